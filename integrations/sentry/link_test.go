package sentry

import "testing"

func TestNextCursor(t *testing.T) {
	for _, tc := range []struct {
		name   string
		header []string
		want   string
		ok     bool
	}{
		{
			name: "sentry docs example, more results",
			header: []string{`<https://sentry.io/api/0/organizations/acme/issues/123456/events/?&cursor=0:0:1>; rel="previous"; results="false"; cursor="0:0:1", ` +
				`<https://sentry.io/api/0/organizations/acme/issues/123456/events/?&cursor=0:100:0>; rel="next"; results="true"; cursor="0:100:0"`},
			want: "0:100:0", ok: true,
		},
		{
			name: "last page",
			header: []string{`<https://sentry.io/api/0/x/?&cursor=0:100:1>; rel="previous"; results="true"; cursor="0:100:1", ` +
				`<https://sentry.io/api/0/x/?&cursor=0:200:0>; rel="next"; results="false"; cursor="0:200:0"`},
		},
		{
			name:   "cursor only in the URL, a comma inside the URL",
			header: []string{`<https://sentry.io/api/0/x/?query=a,b&cursor=1700000000000:0:0>; rel="next"; results="true"`},
			want:   "1700000000000:0:0", ok: true,
		},
		{
			name:   "two Link headers, unquoted values",
			header: []string{`<https://s/a?&cursor=0:0:1>; rel=previous; results=false; cursor="0:0:1"`, `<https://s/a?&cursor=0:25:0>; rel=next; results=true; cursor="0:25:0"`},
			want:   "0:25:0", ok: true,
		},
		{name: "no header"},
		{name: "garbage", header: []string{`nonsense; rel="next"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := nextCursor(tc.header)
			if got != tc.want || ok != tc.ok {
				t.Fatalf("nextCursor = %q, %v; want %q, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestFlexInt(t *testing.T) {
	for in, want := range map[string]int64{`"123"`: 123, `45`: 45, `null`: 0, `""`: 0, `"9007199254740993"`: 9007199254740993} {
		var f flexInt
		if err := f.UnmarshalJSON([]byte(in)); err != nil || int64(f) != want {
			t.Fatalf("%s: %d, %v", in, f, err)
		}
	}
	var f flexInt
	if err := f.UnmarshalJSON([]byte(`"many"`)); err == nil {
		t.Fatal("non-number accepted")
	}
}
