// Command rows keeps the map from checklist rows to tests in one place.
//
// Checklist rows (A3, B40, I16, ...) are defined by the tables of docs/*.md
// (first cell: the row's ID and name). Tests carry the rows they check in
// their names (TestB40_B41_B42_Attributes, the e2e subtest
// A15_A18_FailoverWhenTheAnnouncerDies; "L28_to_L32" is a range). The
// name is the one source: rows writes docs/rows.md from the test names,
// and fails, naming each problem, when
//   - a test name carries an ID that no docs table defines,
//   - a docs table cites a test that does not exist, or
//   - a docs row cites a test whose name does not carry the row's ID (the
//     test's name must then say it checks that row too).
//
// Usage: go run ./hack/rows [-out docs/rows.md]; `make generate` runs it.
package main

import (
	"bytes"
	"cmp"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

func main() {
	out := flag.String("out", "docs/rows.md", "the generated table")
	flag.Parse()
	rows, err := readRows("docs")
	if err != nil {
		fail(err)
	}
	tests, err := readTests(".")
	if err != nil {
		fail(err)
	}
	idx := index(rows, tests)
	if problems := check(rows, tests); len(problems) > 0 {
		fmt.Fprintln(os.Stderr, "checklist rows and test names disagree:")
		for _, p := range problems {
			fmt.Fprintln(os.Stderr, "  "+p)
		}
		os.Exit(1)
	}
	if err := os.WriteFile(*out, render(rows, idx), 0o644); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "rows:", err)
	os.Exit(1)
}

// row is one checklist row of a docs table.
type row struct {
	ids   []string // the row's IDs (a cell such as "B29, B30 CiliumPodIPPool")
	name  string
	doc   string // file
	line  int
	cites []string // test names the row cites ("TestA9_A10_" for an abbreviated "TestA9_A10_…")
}

// test is a test function or a named subtest.
type test struct {
	pkg  string // folder
	name string // TestX, or TestX/Sub for a subtest
	leaf string // the function or the subtest name
	ids  []string
}

var (
	rowCell   = regexp.MustCompile(`^\|\s*((?:[A-Z]{1,2}\d+(?:,\s*|\s*[–-]\s*|\s+to\s+)?)+)\s*([^|]*)\|(.*)$`)
	rowID     = regexp.MustCompile(`[A-Z]{1,2}\d+`)
	citedTest = regexp.MustCompile(`\b(Test[A-Za-z0-9_]+(?:/[A-Za-z0-9_]+)?)(…|\*)?`)
	citedSub  = regexp.MustCompile(`\b((?:[A-Z]{1,2}\d+_)+[A-Z][A-Za-z0-9_]*|(?:[A-Z]{1,2}\d+_)+)(…|\*)?`)
	funcTest  = regexp.MustCompile(`(?m)^func (Test[A-Za-z0-9_]+)\(`)
	subTest   = regexp.MustCompile(`\.Run\("([A-Za-z0-9_]+)"`)
)

// readRows reads the checklist tables of the docs folder: table lines whose
// first cell starts with row IDs.
func readRows(dir string) ([]row, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.md"))
	if err != nil {
		return nil, err
	}
	var rows []row
	for _, f := range files {
		if filepath.Base(f) == "rows.md" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		for i, line := range strings.Split(string(b), "\n") {
			m := rowCell.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			r := row{ids: expand(m[1]), name: strings.TrimSpace(m[2]), doc: f, line: i + 1}
			rest := m[3]
			for _, c := range citedTest.FindAllStringSubmatch(rest, -1) {
				r.cites = append(r.cites, cite(c))
			}
			for _, c := range citedSub.FindAllStringSubmatch(rest, -1) {
				r.cites = append(r.cites, cite(c))
			}
			rows = append(rows, r)
		}
	}
	return rows, nil
}

// cite is a cited name; an abbreviated one ("TestA9_A10_…",
// "E4_WithoutPolicy…") stands for every name it begins.
func cite(m []string) string {
	if m[2] != "" {
		return m[1] + "…"
	}
	return m[1]
}

// expand lists the IDs of "B29, B30" or "L28 to L32".
func expand(cell string) []string {
	ids := rowID.FindAllString(cell, -1)
	if len(ids) == 2 && (strings.Contains(cell, " to ") || strings.ContainsAny(cell, "–-")) {
		return idRange(ids[0], ids[1])
	}
	return ids
}

func idRange(from, to string) []string {
	pf, nf := split(from)
	pt, nt := split(to)
	if pf != pt || nf > nt {
		return []string{from, to}
	}
	var out []string
	for n := nf; n <= nt; n++ {
		out = append(out, pf+strconv.Itoa(n))
	}
	return out
}

func split(id string) (string, int) {
	i := strings.IndexFunc(id, func(r rune) bool { return r >= '0' && r <= '9' })
	n, _ := strconv.Atoi(id[i:])
	return id[:i], n
}

// readTests finds the tests of every _test.go file below root.
func readTests(root string) ([]test, error) {
	var tests []test
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "bin" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		pkg := filepath.Dir(path)
		funcs := funcTest.FindAllSubmatchIndex(b, -1)
		for i, f := range funcs {
			name := string(b[f[2]:f[3]])
			tests = append(tests, test{pkg: pkg, name: name, leaf: name})
			end := len(b)
			if i+1 < len(funcs) {
				end = funcs[i+1][0]
			}
			for _, s := range subTest.FindAllSubmatch(b[f[1]:end], -1) {
				tests = append(tests, test{pkg: pkg, name: name + "/" + string(s[1]), leaf: string(s[1])})
			}
		}
		return nil
	})
	return tests, err
}

// idsIn reads the row IDs a test's name carries: its underscore-separated
// tokens that are IDs of a known family, "X1_to_X5" a range.
func idsIn(leaf string, families map[string]bool) []string {
	toks := strings.Split(strings.TrimPrefix(leaf, "Test"), "_")
	var ids []string
	for i, t := range toks {
		if !isID(t, families) {
			continue
		}
		if i >= 2 && toks[i-1] == "to" && isID(toks[i-2], families) {
			r := idRange(toks[i-2], t)
			ids = append(ids, r[1:]...)
			continue
		}
		ids = append(ids, t)
	}
	return ids
}

func isID(tok string, families map[string]bool) bool {
	if !rowID.MatchString(tok) || rowID.FindString(tok) != tok {
		return false
	}
	p, _ := split(tok)
	return families[p]
}

// index maps each ID to the tests whose names carry it.
func index(rows []row, tests []test) map[string][]test {
	families := map[string]bool{}
	for _, r := range rows {
		for _, id := range r.ids {
			p, _ := split(id)
			families[p] = true
		}
	}
	idx := map[string][]test{}
	for i := range tests {
		tests[i].ids = idsIn(tests[i].leaf, families)
		for _, id := range tests[i].ids {
			idx[id] = append(idx[id], tests[i])
		}
	}
	return idx
}

func check(rows []row, tests []test) []string {
	var problems []string
	defined := map[string]bool{}
	for _, r := range rows {
		for _, id := range r.ids {
			defined[id] = true
		}
	}
	for _, t := range tests {
		for _, id := range t.ids {
			if !defined[id] {
				problems = append(problems, fmt.Sprintf("%s %s: carries %s, which no docs table defines", t.pkg, t.name, id))
			}
		}
	}
	for _, r := range rows {
		for _, c := range r.cites {
			matches := matching(tests, c)
			where := fmt.Sprintf("%s:%d (%s)", r.doc, r.line, strings.Join(r.ids, ", "))
			if len(matches) == 0 {
				problems = append(problems, fmt.Sprintf("%s: cites %s, which is no test", where, c))
				continue
			}
			if !slices.ContainsFunc(matches, func(t test) bool { return carriesAny(t, r.ids, tests) }) {
				problems = append(problems, fmt.Sprintf("%s: cites %s %s, whose name does not carry %s: name the row in the test", where, matches[0].pkg, matches[0].name, strings.Join(r.ids, " or ")))
			}
		}
	}
	slices.Sort(problems)
	return slices.Compact(problems)
}

// matching finds the tests a citation names: by exact function or subtest
// name, or by the leading part of one up to an underscore
// ("TestB22_B25" for TestB22_B25_GracefulRestart, "TestA9_A10_…").
func matching(tests []test, c string) []test {
	prefix, abbreviated := strings.CutSuffix(c, "…")
	if !abbreviated && !strings.HasSuffix(prefix, "_") {
		prefix += "_"
	}
	var out []test
	for _, t := range tests {
		name := t.leaf
		if strings.Contains(c, "/") {
			name = t.name
		}
		if name == c || strings.HasPrefix(name, prefix) {
			out = append(out, t)
		}
	}
	return out
}

// carriesAny: t's name, or the name of one of its subtests, carries one of
// ids.
func carriesAny(t test, ids []string, tests []test) bool {
	for _, u := range tests {
		if u.pkg == t.pkg && (u.name == t.name || strings.HasPrefix(u.name, t.name+"/")) &&
			slices.ContainsFunc(ids, func(id string) bool { return slices.Contains(u.ids, id) }) {
			return true
		}
	}
	return false
}

func render(rows []row, idx map[string][]test) []byte {
	type entry struct {
		id, name, doc string
	}
	var entries []entry
	seen := map[string]bool{}
	for _, r := range rows {
		for _, id := range r.ids {
			if !seen[id] {
				seen[id] = true
				entries = append(entries, entry{id, r.name, filepath.Base(r.doc)})
			}
		}
	}
	slices.SortFunc(entries, func(a, b entry) int {
		pa, na := split(a.id)
		pb, nb := split(b.id)
		return cmp.Or(cmp.Compare(pa, pb), cmp.Compare(na, nb))
	})
	var b bytes.Buffer
	b.WriteString(`# Checklist rows and their tests

<!-- Generated by go run ./hack/rows (make generate) from the docs' checklist
tables and the test names; do not edit. -->

Every row of the feature docs' checklist tables and the tests whose names
carry its ID. A test's name is the one record of the rows it checks; a row
with no test here is checked another way or not at all, as its feature doc
says.

| row | doc | tests |
|---|---|---|
`)
	for _, e := range entries {
		var names []string
		for _, t := range idx[e.id] {
			names = append(names, fmt.Sprintf("`%s` %s", filepath.ToSlash(t.pkg), t.name))
		}
		slices.Sort(names)
		tests := strings.Join(slices.Compact(names), "<br>")
		if tests == "" {
			tests = "(none named)"
		}
		fmt.Fprintf(&b, "| %s %s | %s | %s |\n", e.id, e.name, e.doc, tests)
	}
	return b.Bytes()
}
