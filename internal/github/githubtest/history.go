package githubtest

import (
	"bytes"
	"encoding/hex"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"remediator/internal/forge/forgetest"
)

// --- history and trees: the compare and Git Trees endpoints ---

// ResolveCommit names the commit a compare side means: a full sha, a full
// ref name ("refs/pull/7/head"), a branch, then a tag; "" when none.
func (r *Repo) ResolveCommit(name string) string {
	if _, ok := r.Commits[strings.ToLower(name)]; ok && len(name) == 40 {
		return strings.ToLower(name)
	}
	for _, ref := range []string{name, "refs/heads/" + name, "refs/tags/" + name} {
		if sha := r.Refs[ref]; strings.HasPrefix(ref, "refs/") && sha != "" {
			return sha
		}
	}
	return ""
}

// Ancestors is every commit reachable from id through all parents, id
// included.
func (r *Repo) Ancestors(id string) map[string]bool { return forgetest.Ancestors(id, r.parents) }

// MergeBase is a best common ancestor of a and b, or "" for unrelated
// histories.
func (r *Repo) MergeBase(a, b string) string { return forgetest.MergeBase(a, b, r.parents) }

// only lists the commits reachable from from but not from not, parents
// before children, as the compare API lists them.
func (r *Repo) only(from, not string) []string {
	exclude := r.Ancestors(not)
	seen := map[string]bool{}
	var out []string
	var visit func(string)
	visit = func(c string) {
		if seen[c] || exclude[c] {
			return
		}
		if _, ok := r.Commits[c]; !ok {
			return
		}
		seen[c] = true
		for _, p := range r.Commits[c].Parents {
			visit(p)
		}
		out = append(out, c)
	}
	visit(from)
	return out
}

// compare answers GET /repos/{owner}/{repo}/compare/{base}...{head} the
// way GitHub does: status "identical", "ahead" (head has commits base
// lacks), "behind" (head is an ancestor of base) or "diverged"; 404 when
// a side names nothing or the histories share no commit.
func (f *Server) compare(w http.ResponseWriter, req *http.Request, r *Repo) {
	baseName, headName, ok := strings.Cut(req.PathValue("basehead"), "...")
	if !ok {
		writeJSON(w, http.StatusNotFound, ghError("Not Found"))
		return
	}
	base, head := r.ResolveCommit(baseName), r.ResolveCommit(headName)
	if base == "" || head == "" {
		writeJSON(w, http.StatusNotFound, ghError("Not Found"))
		return
	}
	mb := r.MergeBase(base, head)
	if mb == "" {
		writeJSON(w, http.StatusNotFound, ghError("No common ancestor between "+baseName+" and "+headName+"."))
		return
	}
	ahead, behind := r.only(head, base), r.only(base, head)
	status := "diverged"
	switch {
	case len(ahead) == 0 && len(behind) == 0:
		status = "identical"
	case len(behind) == 0:
		status = "ahead"
	case len(ahead) == 0:
		status = "behind"
	}
	q := req.URL.Query()
	per, _ := strconv.Atoi(q.Get("per_page"))
	if per <= 0 || per > 250 {
		per = 250
	}
	page, _ := strconv.Atoi(q.Get("page"))
	if page < 1 {
		page = 1
	}
	lo, hi := min((page-1)*per, len(ahead)), min(page*per, len(ahead))
	commits := []map[string]any{}
	for _, c := range ahead[lo:hi] {
		commits = append(commits, f.repoCommitJSON(r, c))
	}
	html := "https://github.example/" + r.Owner + "/" + r.Name + "/compare/" + baseName + "..." + headName
	writeJSON(w, http.StatusOK, map[string]any{
		"url":      f.repoURL(r) + "/compare/" + baseName + "..." + headName,
		"html_url": html, "permalink_url": html, "diff_url": html + ".diff", "patch_url": html + ".patch",
		"base_commit": f.repoCommitJSON(r, base), "merge_base_commit": f.repoCommitJSON(r, mb),
		"status": status, "ahead_by": len(ahead), "behind_by": len(behind), "total_commits": len(ahead),
		"commits": commits, "files": f.changedFiles(r, mb, head),
	})
}

// repoCommitJSON is a commit as the commits and compare APIs list it.
func (f *Server) repoCommitJSON(r *Repo, sha string) map[string]any {
	git := f.commitJSON(r, sha)
	return map[string]any{
		"sha": sha, "node_id": "C_" + sha, "commit": git, "url": f.repoURL(r) + "/commits/" + sha,
		"html_url": "https://github.example/" + r.Owner + "/" + r.Name + "/commit/" + sha, "parents": git["parents"],
	}
}

// changedFiles is the diff of two commits' trees, file by file.
func (f *Server) changedFiles(r *Repo, from, to string) []map[string]any {
	a, b := r.Trees[r.Commits[from].Tree], r.Trees[r.Commits[to].Tree]
	paths := map[string]bool{}
	for p := range a {
		paths[p] = true
	}
	for p := range b {
		paths[p] = true
	}
	sorted := make([]string, 0, len(paths))
	for p := range paths {
		sorted = append(sorted, p)
	}
	sort.Strings(sorted)
	out := []map[string]any{}
	for _, p := range sorted {
		before, had := a[p]
		after, has := b[p]
		status := "modified"
		switch {
		case had && has && before == after:
			continue
		case !had:
			status = "added"
		case !has:
			status = "removed"
			after = before
		}
		out = append(out, map[string]any{
			"sha": after.SHA, "filename": p, "status": status, "additions": 0, "deletions": 0, "changes": 0,
		})
	}
	return out
}

// dirRef names a subdirectory of one of the fake's flat trees.
type dirRef struct{ flat, prefix string }

// treeEntry is one entry of a directory of a flat tree: a file, or a
// subdirectory with its git tree id.
type treeEntry struct {
	name, mode, kind, sha string
	size                  int
}

// listDir lists the directory prefix ("" or "a/b/") of flat tree flat, one
// level deep, in git's order, registering the subdirectories' ids so that
// they can be asked for in turn.
func (r *Repo) listDir(flat, prefix string) []treeEntry {
	files := map[string]Entry{}
	dirs := map[string]bool{}
	for p, e := range r.Trees[flat] {
		rest, ok := strings.CutPrefix(p, prefix)
		if !ok {
			continue
		}
		if name, _, isDir := strings.Cut(rest, "/"); isDir {
			dirs[name] = true
		} else {
			files[rest] = e
		}
	}
	var out []treeEntry
	for name, e := range files {
		kind := "blob"
		if e.Mode == "160000" {
			kind = "commit"
		}
		out = append(out, treeEntry{name: name, mode: e.Mode, kind: kind, sha: e.SHA, size: len(r.Blobs[e.SHA])})
	}
	for name := range dirs {
		sub := prefix + name + "/"
		id := r.dirID(flat, sub)
		if r.dirs == nil {
			r.dirs = map[string]dirRef{}
		}
		r.dirs[id] = dirRef{flat: flat, prefix: sub}
		out = append(out, treeEntry{name: name, mode: "040000", kind: "tree", sha: id})
	}
	// git sorts a directory's entries by name, a subdirectory as "name/".
	key := func(e treeEntry) string {
		if e.kind == "tree" {
			return e.name + "/"
		}
		return e.name
	}
	sort.Slice(out, func(i, j int) bool { return key(out[i]) < key(out[j]) })
	return out
}

// dirID is the git tree id of a subdirectory: the hash of its real tree
// object, entries "<mode> <name>\x00<binary id>" in git's order.
func (r *Repo) dirID(flat, prefix string) string {
	var b bytes.Buffer
	for _, e := range r.listDir(flat, prefix) {
		mode := e.mode
		if e.kind == "tree" {
			mode = "40000"
		}
		raw, _ := hex.DecodeString(e.sha)
		b.WriteString(mode + " " + e.name + "\x00")
		b.Write(raw)
	}
	return GitHash("tree", b.Bytes())
}

// tree answers GET /repos/{owner}/{repo}/git/trees/{sha}: sha may name a
// commit (its root tree), a root tree, or a subdirectory listed before.
// With ?recursive (any value) every entry below is listed by its path.
func (f *Server) tree(w http.ResponseWriter, req *http.Request, r *Repo) {
	sha := strings.ToLower(req.PathValue("sha"))
	if c, ok := r.Commits[sha]; ok {
		sha = c.Tree
	}
	at, ok := r.dirs[sha]
	if _, root := r.Trees[sha]; root {
		at, ok = dirRef{flat: sha}, true
	}
	if !ok {
		writeJSON(w, http.StatusNotFound, ghError("Not Found"))
		return
	}
	_, recursive := req.URL.Query()["recursive"]
	list := []map[string]any{}
	var walk func(prefix, shown string)
	walk = func(prefix, shown string) {
		for _, e := range r.listDir(at.flat, prefix) {
			m := map[string]any{"path": shown + e.name, "mode": e.mode, "type": e.kind, "sha": e.sha}
			switch e.kind {
			case "blob":
				m["size"] = e.size
				m["url"] = f.repoURL(r) + "/git/blobs/" + e.sha
			case "tree":
				m["url"] = f.repoURL(r) + "/git/trees/" + e.sha
			}
			list = append(list, m)
			if recursive && e.kind == "tree" {
				walk(prefix+e.name+"/", shown+e.name+"/")
			}
		}
	}
	walk(at.prefix, "")
	truncated := f.TruncatedTrees && len(list) > 0
	if truncated {
		list = list[:len(list)-1]
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"sha": sha, "url": f.repoURL(r) + "/git/trees/" + sha, "tree": list, "truncated": truncated,
	})
}

// parents serves forgetest's history walks.
func (r *Repo) parents(id string) ([]string, bool) {
	c, ok := r.Commits[id]
	if !ok {
		return nil, false
	}
	return c.Parents, true
}
