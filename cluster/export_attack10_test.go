package cluster

// FollowerSizes returns the sizes of the follower's maps (calls is owned by
// its goroutine and not read here) and the keeper's wanted set.
func FollowerSizes(r *Registry) (dirs, due, toCheck, inflight, wanted int) {
	k := r.keeper
	k.mu.Lock()
	wanted = len(k.wanted)
	k.mu.Unlock()
	f := k.f
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.dirs), len(f.due), len(f.toCheck), f.inflight, wanted
}
