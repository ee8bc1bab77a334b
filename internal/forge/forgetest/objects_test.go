package forgetest

import "testing"

func TestBlobIDIsGitHashObject(t *testing.T) {
	// printf 'hello\n' | git hash-object --stdin; git's empty blob.
	if got := BlobID("hello\n"); got != "ce013625030ba8dba906f756967f9e9ca394464a" {
		t.Errorf("hello: %s", got)
	}
	if got := BlobID(""); got != "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391" {
		t.Errorf("empty: %s", got)
	}
}
