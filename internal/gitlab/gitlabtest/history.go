package gitlabtest

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"remediator/internal/forge/forgetest"
)

// --- history and trees: merge_base and the repository tree ---

// blobID is git's id of a blob: what git hash-object prints.
func blobID(content []byte) string {
	return gitHash("blob", content)
}

func gitHash(kind string, body []byte) string { return forgetest.GitHash(kind, body) }

// Ancestors is every commit reachable from id through all parents, id
// included.
func (f *Server) Ancestors(id string) map[string]bool { return forgetest.Ancestors(id, f.parents) }

// MergeBase is a best common ancestor of a and b, or "" for unrelated
// histories.
func (f *Server) MergeBase(a, b string) string { return forgetest.MergeBase(a, b, f.parents) }

// mergeBase answers GET /projects/:id/repository/merge_base?refs[]=…&refs[]=…
// as GitLab does: refs are split on commas, fewer than two or an unknown
// one is a 400, no common ancestor a 404.
func (f *Server) mergeBase(w http.ResponseWriter, r *http.Request) {
	var refs []string
	for _, v := range r.URL.Query()["refs[]"] {
		for _, s := range strings.Split(v, ",") {
			refs = append(refs, strings.TrimSpace(s))
		}
	}
	if len(refs) < 2 {
		message(w, 400, "Provide at least 2 refs")
		return
	}
	var unknown, ids []string
	for _, ref := range refs {
		if c := f.resolve(ref); c != nil {
			ids = append(ids, c.ID)
		} else {
			unknown = append(unknown, ref)
		}
	}
	if len(unknown) > 0 {
		noun := "ref"
		if len(unknown) > 1 {
			noun = "refs"
		}
		message(w, 400, fmt.Sprintf("Could not find %s: %s", noun, strings.Join(unknown, ", ")))
		return
	}
	mb := ids[0]
	for _, id := range ids[1:] {
		if mb = f.MergeBase(mb, id); mb == "" {
			message(w, 404, "404 Merge Base Not Found")
			return
		}
	}
	writeJSON(w, 200, f.commitJSON(f.Commits[mb]))
}

// treeNode is one entry of a directory of a commit.
type treeNode struct {
	id, name, kind, path, mode string
}

// dir lists the directory dir ("" for the root) of c, one level deep:
// files with their blob ids, subdirectories with their git tree ids.
func dir(c *Commit, dir string) []treeNode {
	prefix := ""
	if dir != "" {
		prefix = dir + "/"
	}
	files := map[string]File{}
	dirs := map[string]bool{}
	for p, file := range c.Files {
		rest, ok := strings.CutPrefix(p, prefix)
		if !ok {
			continue
		}
		if name, _, isDir := strings.Cut(rest, "/"); isDir {
			dirs[name] = true
		} else {
			files[rest] = file
		}
	}
	var out []treeNode
	for name := range dirs {
		out = append(out, treeNode{id: treeID(c, prefix+name), name: name, kind: "tree", path: prefix + name, mode: "040000"})
	}
	for name, file := range files {
		mode := "100644"
		if file.Exec {
			mode = "100755"
		}
		out = append(out, treeNode{id: blobID(file.Content), name: name, kind: "blob", path: prefix + name, mode: mode})
	}
	return out
}

// treeID is the git id of directory d of c: the hash of its tree object,
// entries "<mode> <name>\x00<binary id>" sorted as git sorts them (a
// directory as "name/").
func treeID(c *Commit, d string) string {
	entries := dir(c, d)
	key := func(n treeNode) string {
		if n.kind == "tree" {
			return n.name + "/"
		}
		return n.name
	}
	sort.Slice(entries, func(i, j int) bool { return key(entries[i]) < key(entries[j]) })
	var b bytes.Buffer
	for _, n := range entries {
		mode := n.mode
		if n.kind == "tree" {
			mode = "40000"
		}
		raw, _ := hex.DecodeString(n.id)
		b.WriteString(mode + " " + n.name + "\x00")
		b.Write(raw)
	}
	return gitHash("tree", b.Bytes())
}

// listTree answers GET /projects/:id/repository/tree?path=&ref=&recursive=
// like GitLab: directories first, then files, each by name, paginated; a
// path that is no directory is a 404.
func (f *Server) listTree(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	ref := q.Get("ref")
	if ref == "" {
		ref = f.Project.DefaultBranch
	}
	c := f.resolve(ref)
	if c == nil {
		message(w, 404, "404 Tree Not Found")
		return
	}
	path := strings.Trim(q.Get("path"), "/")
	var nodes []treeNode
	var walk func(d string)
	walk = func(d string) {
		level := dir(c, d)
		sort.Slice(level, func(i, j int) bool {
			if level[i].kind != level[j].kind {
				return level[i].kind == "tree"
			}
			return level[i].name < level[j].name
		})
		for _, n := range level {
			nodes = append(nodes, n)
			if n.kind == "tree" && q.Get("recursive") == "true" {
				walk(n.path)
			}
		}
	}
	walk(path)
	if len(nodes) == 0 {
		message(w, 404, "404 invalid revision or path Not Found")
		return
	}
	out := make([]map[string]any, 0, len(nodes))
	for _, n := range nodes {
		out = append(out, map[string]any{"id": n.id, "name": n.name, "type": n.kind, "path": n.path, "mode": n.mode})
	}
	lo, hi := f.paginate(w, r, len(out))
	writeJSON(w, 200, nonNil(out[lo:hi]))
}

// parents serves forgetest's history walks.
func (f *Server) parents(id string) ([]string, bool) {
	c := f.Commits[id]
	if c == nil {
		return nil, false
	}
	return c.Parents, true
}
