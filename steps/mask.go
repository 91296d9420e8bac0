package steps

// SetMask sets how text is cleaned of secrets before it is stored and so
// before it reaches chat: step notes and prompts, the run's outcome, audit
// details and every outbox entry. Outside systems' answers reach these
// texts (an error that quotes what was sent), and the store is a file on
// disk; the domain knows no secrets, so the program passes the function in.
func (e *Engine) SetMask(mask func(string) string) { e.mask = mask }

// masked cleans what a transition is about to store.
func (e *Engine) masked(r *Run, c *Changes) {
	if e.mask == nil {
		return
	}
	if r != nil {
		r.Outcome = e.mask(r.Outcome)
		for i := range r.Steps {
			st := &r.Steps[i]
			st.Note, st.Prompt = e.mask(st.Note), e.mask(st.Prompt)
		}
	}
	if c == nil {
		return
	}
	for i := range c.Events {
		c.Events[i].Detail = e.mask(c.Events[i].Detail)
	}
	for i := range c.Outbox {
		o := &c.Outbox[i]
		// The name and title identify a file in the thread after a crash
		// (FindFile): both are masked here, once, so that what is looked
		// for is what was sent.
		o.Text, o.Title, o.Name = e.mask(o.Text), e.mask(o.Title), e.mask(o.Name)
		if len(o.Content) > 0 {
			o.Content = []byte(e.mask(string(o.Content)))
		}
	}
}
