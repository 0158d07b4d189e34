package cluster

// Settled reports whether r's keeper has nothing left to do: every znode
// it keeps is confirmed on the current session and none waits to be
// deleted. Tests wait for it before they look for what the keeper might
// still delete.
func Settled(r *Registry) bool { return r.keeper.settled() }
