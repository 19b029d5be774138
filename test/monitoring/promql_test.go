package monitoring

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// The metric names of a PromQL expression are found by a small scanner
// rather than by github.com/prometheus/prometheus/promql/parser: that module
// would add the Prometheus server's dependency tree to go.mod for a job that
// needs a tokenizer. The scanner relies on the expression being valid, which
// the other tests establish: promtool parses every rule and every dashboard
// expression, and the live test evaluates them all.

// selector is a vector selector of an expression.
type selector struct {
	// Name is the metric name.
	Name string
	// Text is the selector as written, name and label matchers: an
	// expression on its own.
	Text string
}

// PromQL keywords that are not followed by "(" when used.
var promqlKeywords = map[string]bool{
	"and": true, "or": true, "unless": true, "atan2": true, "bool": true, "offset": true,
	"inf": true, "nan": true,
}

// Modifiers followed by a parenthesised list of label names.
var promqlLabelLists = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
}

// selectors returns the vector selectors of a valid PromQL expression, in
// order of appearance.
func selectors(expr string) ([]selector, error) {
	masked, err := maskStrings(expr)
	if err != nil {
		return nil, err
	}
	var out []selector
	n := len(masked)
	for i := 0; i < n; {
		c := masked[i]
		switch {
		case isIdentStart(c):
			start := i
			for i < n && isIdentChar(masked[i]) {
				i++
			}
			ident := masked[start:i]
			next := skipSpace(masked, i)
			lower := strings.ToLower(ident)
			switch {
			case promqlLabelLists[lower]:
				if next < n && masked[next] == '(' {
					end, err := matching(masked, next, '(', ')')
					if err != nil {
						return nil, err
					}
					i = end + 1
				}
			case promqlKeywords[lower]:
			case next < n && masked[next] == '(':
				// A function or an aggregation: its arguments are scanned
				// as they come.
			case promqlLabelLists[strings.ToLower(identAt(masked, next))]:
				// An aggregation with its modifier first: sum by (x) (...).
			default:
				text := ident
				if next < n && masked[next] == '{' {
					end, err := matching(masked, next, '{', '}')
					if err != nil {
						return nil, err
					}
					text = expr[start : end+1]
					i = end + 1
				}
				out = append(out, selector{Name: ident, Text: text})
			}
		case c >= '0' && c <= '9' || c == '.':
			// A number or a duration: 0.99, 1e-3, 5m, 0x1F.
			for i < n && (isIdentChar(masked[i]) || masked[i] == '.') {
				i++
			}
		case c == '[':
			// A range or subquery: durations (and Grafana's $__rate_interval).
			end, err := matching(masked, i, '[', ']')
			if err != nil {
				return nil, err
			}
			i = end + 1
		case c == '{':
			return nil, fmt.Errorf("a selector without a metric name at offset %d of %q: name the metric", i, expr)
		case c == '$':
			// A Grafana variable outside a string.
			i++
			for i < n && (isIdentChar(masked[i]) || masked[i] == '{' || masked[i] == '}') {
				i++
			}
		default:
			i++
		}
	}
	return out, nil
}

// metricNames returns the distinct metric names of expr, sorted.
func metricNames(expr string) ([]string, error) {
	sels, err := selectors(expr)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, s := range sels {
		names = append(names, s.Name)
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

// maskStrings returns expr with the contents of its string literals and
// comments replaced by spaces, so that nothing inside them is scanned.
func maskStrings(expr string) (string, error) {
	b := []byte(expr)
	for i := 0; i < len(b); i++ {
		switch q := b[i]; q {
		case '"', '\'', '`':
			j := i + 1
			for ; j < len(b) && b[j] != q; j++ {
				if b[j] == '\\' && q != '`' {
					b[j] = ' '
					j++
					if j == len(b) {
						break
					}
				}
				b[j] = ' '
			}
			if j >= len(b) {
				return "", fmt.Errorf("unterminated string in %q", expr)
			}
			i = j
		case '#':
			for ; i < len(b) && b[i] != '\n'; i++ {
				b[i] = ' '
			}
		}
	}
	return string(b), nil
}

// matching returns the index of the bracket that closes the one at open.
func matching(s string, open int, o, c byte) (int, error) {
	depth := 0
	for i := open; i < len(s); i++ {
		switch s[i] {
		case o:
			depth++
		case c:
			depth--
			if depth == 0 {
				return i, nil
			}
		}
	}
	return 0, fmt.Errorf("unbalanced %c at offset %d of %q", o, open, s)
}

func skipSpace(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
		i++
	}
	return i
}

// identAt returns the identifier starting at i, "" if none does.
func identAt(s string, i int) string {
	if i >= len(s) || !isIdentStart(s[i]) {
		return ""
	}
	j := i
	for j < len(s) && isIdentChar(s[j]) {
		j++
	}
	return s[i:j]
}

func isIdentStart(c byte) bool {
	return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func isIdentChar(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }

func TestSelectors(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string // selector texts
	}{
		{`up`, []string{`up`}},
		{`up == 0`, []string{`up`}},
		{`sum by (job, le) (rate(a_bucket{x="1", y=~"a|b"}[5m]))`, []string{`a_bucket{x="1", y=~"a|b"}`}},
		{`sum(rate(a[$__rate_interval])) by (instance)`, []string{`a`}},
		{`histogram_quantile(0.99, sum without (pod) (rate(b_bucket[1m] offset 5m)))`, []string{`b_bucket`}},
		{`a and on (job, instance) b{m=~"$mesh"} or on () absent(c)`, []string{`a`, `b{m=~"$mesh"}`, `c`}},
		{`a / ignoring (x) group_left (y) b`, []string{`a`, `b`}},
		{`label_replace(a, "dst", "$1", "src", "(.+)") > bool 1e-3`, []string{`a`}},
		{`max_over_time(a[1h:1m]) unless b{s="}{"} # a comment naming c`, []string{`a`, `b{s="}{"}`}},
		{`-sum(x:recorded:rate5m) atan2 y`, []string{`x:recorded:rate5m`, `y`}},
		{`count_values("le", a) + vector(0) + time() + Inf + NaN`, []string{`a`}},
		{`sum by (l) (a{l="by (x)"}) + topk(3, b)`, []string{`a{l="by (x)"}`, `b`}},
		{`a{b='single \' quote'} + c`, []string{`a{b='single \' quote'}`, `c`}},
	} {
		sels, err := selectors(tc.expr)
		if err != nil {
			t.Errorf("selectors(%q): %v", tc.expr, err)
			continue
		}
		var got []string
		for _, s := range sels {
			got = append(got, s.Text)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("selectors(%q) = %q, want %q", tc.expr, got, tc.want)
		}
	}
	for _, bad := range []string{`{__name__="a"}`, `a{b="c}`, `a{b="c"`, `rate(a[5m)`} {
		if _, err := selectors(bad); err == nil {
			t.Errorf("selectors(%q): no error", bad)
		}
	}
}
