package chaos

import (
	"fmt"
	"strconv"
	"strings"
)

// Event is one line of the history: something a node process reported, or
// something the driver did. T is a reading of [Now], shared by all
// processes on the machine.
type Event struct {
	T    int64    // CLOCK_MONOTONIC, ns
	Src  string   // "driver", or the node incarnation's label such as "n1.2"
	Kind string   // see the package doc for the kinds
	Args []string // the kind's fields; free text, if any, comes last
}

// Arg returns the i-th field, or "" when there is none.
func (e Event) Arg(i int) string {
	if i < len(e.Args) {
		return e.Args[i]
	}
	return ""
}

// Int returns the i-th field as an integer, or 0.
func (e Event) Int(i int) int64 {
	n, _ := strconv.ParseInt(e.Arg(i), 10, 64)
	return n
}

// Rest joins the fields from the i-th on: the free text at the end of a line.
func (e Event) Rest(i int) string {
	if i >= len(e.Args) {
		return ""
	}
	return strings.Join(e.Args[i:], " ")
}

// format renders an event relative to t0 for reports.
func (e Event) format(t0 int64) string {
	return fmt.Sprintf("%+9.3fs %-6s %-9s %s", float64(e.T-t0)/1e9, e.Src, e.Kind, strings.Join(e.Args, " "))
}

// line renders an event as the node processes write it: "<T> <kind> <args...>".
func line(kind string, args ...any) string {
	var b strings.Builder
	b.WriteString(strconv.FormatInt(Now(), 10))
	b.WriteByte(' ')
	b.WriteString(kind)
	for _, a := range args {
		b.WriteByte(' ')
		s := fmt.Sprint(a)
		if s == "" {
			s = "-"
		}
		// One line per event, whatever an error message holds.
		b.WriteString(strings.NewReplacer("\n", " ", "\r", " ").Replace(s))
	}
	return b.String()
}

// parseLine reads a line written by [line]; ok is false for anything else
// (a stray print of a library, say), which the driver keeps as "junk".
func parseLine(src, s string) (Event, bool) {
	f := strings.Fields(s)
	if len(f) < 2 {
		return Event{}, false
	}
	t, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		return Event{}, false
	}
	return Event{T: t, Src: src, Kind: f[1], Args: f[2:]}, true
}
