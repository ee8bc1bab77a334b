package forgetest

import "sort"

// Parents returns a commit's parents, and whether the commit is known.
type Parents func(id string) ([]string, bool)

// Ancestors is every known commit reachable from id through all parents,
// id included.
func Ancestors(id string, parents Parents) map[string]bool {
	seen := map[string]bool{}
	for stack := []string{id}; len(stack) > 0; {
		c := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		ps, ok := parents(c)
		if seen[c] || !ok {
			continue
		}
		seen[c] = true
		stack = append(stack, ps...)
	}
	return seen
}

// MergeBase is a best common ancestor of a and b (one that is no ancestor
// of another common ancestor), or "" for unrelated histories.
func MergeBase(a, b string, parents Parents) string {
	inA, inB := Ancestors(a, parents), Ancestors(b, parents)
	var common []string
	for c := range inA {
		if inB[c] {
			common = append(common, c)
		}
	}
	sort.Strings(common)
	for _, c := range common {
		best := true
		for _, d := range common {
			if d != c && Ancestors(d, parents)[c] {
				best = false
				break
			}
		}
		if best {
			return c
		}
	}
	return ""
}
