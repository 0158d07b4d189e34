package global

import "fmt"

// Attack11State describes this node's candidacy for name, for attack11's
// failure messages: its PID, its term (if any) and its place in the table.
func Attack11State(e *Elections, name string) string {
	e.mu.Lock()
	c, ending := e.candidacies[name], e.ending[name]
	e.mu.Unlock()
	if c == nil {
		return fmt.Sprintf("no candidacy (ending %v)", ending != nil)
	}
	s := fmt.Sprintf("candidacy %s", c.pid.Id)
	if t := c.currentTerm(); t != nil {
		s += fmt.Sprintf(" leads epoch %d as %s", t.epoch, t.pid.Id)
	}
	return s
}
