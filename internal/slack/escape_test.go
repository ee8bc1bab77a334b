package slack

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestEscEscapesAndCleans(t *testing.T) {
	got := esc("<!channel> & <@U1>\n\x00\u202eok\xff", 100)
	want := "&lt;!channel&gt; &amp; &lt;@U1&gt;   ok\uFFFD"
	if got != want {
		t.Fatalf("esc = %q, want %q", got, want)
	}
}

func TestEscCutsOnBoundaries(t *testing.T) {
	cases := []struct {
		in    string
		limit int
		want  string
	}{
		{"abc", 3, "abc"},      // fits exactly: no ellipsis
		{"abcdef", 5, "ab…"},   // ellipsis is 3 bytes
		{"&&&&", 12, "&amp;…"}, // never half an entity
		{"ééééé", 8, "éé…"},    // never half a character
		{strings.Repeat("é", 10), 20, strings.Repeat("é", 10)},
	}
	for _, c := range cases {
		got := esc(c.in, c.limit)
		if got != c.want || len(got) > c.limit || !utf8.ValidString(got) {
			t.Errorf("esc(%q, %d) = %q, want %q", c.in, c.limit, got, c.want)
		}
	}
}

func TestCutUTF8(t *testing.T) {
	if got := cutUTF8("aé", 2); got != "a" {
		t.Errorf("cutUTF8 = %q, want %q", got, "a")
	}
	if got := cutUTF8("abc", 10); got != "abc" {
		t.Errorf("cutUTF8 = %q", got)
	}
}
