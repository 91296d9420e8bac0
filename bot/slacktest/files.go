package slacktest

import (
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
)

// upload is a file between files.getUploadURLExternal and
// files.completeUploadExternal.
type upload struct {
	id, name  string
	length    int
	content   []byte
	uploaded  bool
	completed bool
}

func (s *Server) filesGetUploadURLExternal(w http.ResponseWriter, req *apiRequest) {
	name := req.get("filename")
	n, err := strconv.Atoi(req.get("length"))
	if name == "" || err != nil || n <= 0 {
		s.fail(w, req.method, "invalid_arguments", fmt.Sprintf("filename %q, length %q", name, req.get("length")), nil)
		return
	}
	s.mu.Lock()
	id := s.nextIDLocked("F")
	path := "/upload/v1/" + secret()
	s.uploads[id] = &upload{id: id, name: name, length: n}
	s.uploadPaths[path] = id
	s.notifyLocked()
	s.mu.Unlock()
	s.ok(w, map[string]any{"upload_url": s.hs.URL + path, "file_id": id})
}

// handleUpload receives the bytes, multipart (as slack-go sends them) or raw.
// The length declared to files.getUploadURLExternal must match.
func (s *Server) handleUpload(w http.ResponseWriter, r *http.Request) {
	const method = "upload"
	refuse := func(status int, code, detail string) {
		s.mu.Lock()
		s.rejectLocked(method, code, detail)
		s.mu.Unlock()
		http.Error(w, code+": "+detail, status)
	}
	s.mu.Lock()
	up := s.uploads[s.uploadPaths[r.URL.Path]]
	s.mu.Unlock()
	if up == nil {
		refuse(http.StatusNotFound, "invalid_upload_url", r.URL.Path)
		return
	}
	if r.Method != http.MethodPost {
		refuse(http.StatusMethodNotAllowed, "invalid_method", r.Method)
		return
	}
	content, err := readUpload(r)
	if err != nil {
		refuse(http.StatusBadRequest, "invalid_upload", err.Error())
		return
	}
	if len(content) != up.length {
		refuse(http.StatusBadRequest, "length_mismatch",
			fmt.Sprintf("file %s (%s): declared %d bytes, received %d", up.id, up.name, up.length, len(content)))
		return
	}
	s.mu.Lock()
	up.content, up.uploaded = content, true
	s.notifyLocked()
	s.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain")
	_, _ = fmt.Fprintf(w, "OK - %d", len(content))
}

func readUpload(r *http.Request) ([]byte, error) {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct != "multipart/form-data" {
		return io.ReadAll(r.Body)
	}
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, err
	}
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return nil, fmt.Errorf("multipart body without a file part")
		}
		if err != nil {
			return nil, err
		}
		if p.FormName() == "file" || p.FileName() != "" {
			return io.ReadAll(p)
		}
	}
}

func (s *Server) filesCompleteUploadExternal(w http.ResponseWriter, req *apiRequest) {
	var summaries []struct {
		ID    string `json:"id"`
		Title string `json:"title"`
	}
	if err := json.Unmarshal([]byte(req.get("files")), &summaries); err != nil || len(summaries) == 0 {
		s.fail(w, req.method, "invalid_arguments", "files must be a JSON array of {id,title}: "+req.get("files"), nil)
		return
	}
	comment := req.get("initial_comment")
	// Blocks are validated but not rendered: only the files matter here.
	if _, code, detail := checkContent(comment, true, req.get("blocks"), req.has("blocks"), ""); code != "" {
		s.fail(w, req.method, code, detail, nil)
		return
	}

	s.mu.Lock()
	var ups []*upload
	for _, f := range summaries {
		up := s.uploads[f.ID]
		var problem string
		switch {
		case up == nil:
			problem = "unknown file " + f.ID
		case !up.uploaded:
			problem = "nothing was uploaded for " + f.ID
		case up.completed:
			problem = "already completed " + f.ID
		}
		if problem != "" {
			s.mu.Unlock()
			s.fail(w, req.method, "file_not_found", problem, nil)
			return
		}
		ups = append(ups, up)
	}
	var targets []*channel
	ids := []string{}
	if id := req.get("channel_id"); id != "" {
		ids = append(ids, id)
	}
	if list := req.get("channels"); list != "" {
		ids = append(ids, strings.Split(list, ",")...)
	}
	for _, id := range ids {
		ch := s.channelLocked(id)
		if ch == nil {
			s.mu.Unlock()
			s.fail(w, req.method, "channel_not_found", id, nil)
			return
		}
		targets = append(targets, ch)
	}
	threadTS := req.get("thread_ts")
	var parent *storedMsg
	if threadTS != "" {
		if len(targets) != 1 {
			s.mu.Unlock()
			s.fail(w, req.method, "invalid_arguments", "thread_ts needs exactly one channel", nil)
			return
		}
		if parent = s.threadParentLocked(targets[0], threadTS); parent == nil {
			s.mu.Unlock()
			s.fail(w, req.method, "thread_not_found", threadTS, nil)
			return
		}
	}

	var files []File
	var out []any
	for i, up := range ups {
		up.completed = true
		title := summaries[i].Title
		if title == "" {
			title = up.name
		}
		f := File{ID: up.id, Name: up.name, Title: title, Content: up.content}
		if len(targets) > 0 {
			f.Channel = targets[0].id
		}
		if parent != nil {
			f.ThreadTS = parent.TS
		}
		s.files[f.ID] = &f
		files = append(files, f)
		out = append(out, map[string]any{"id": f.ID, "title": f.Title})
	}
	for _, ch := range targets {
		m := &storedMsg{byBot: true, Message: Message{Channel: ch.id, TS: s.nextTSLocked(), User: s.opts.BotUserID,
			BotID: s.opts.BotID, Text: comment, Files: files}}
		if parent != nil {
			s.addReplyLocked(ch, parent, m)
			parent.Files = append(parent.Files, files...)
		} else {
			ch.top = append(ch.top, m)
			ch.byTS[m.TS] = m
		}
	}
	s.notifyLocked()
	s.mu.Unlock()
	s.ok(w, map[string]any{"files": out})
}
