package config

import "google.golang.org/protobuf/types/known/structpb"

// Subscriptions is the number of live subscriptions of st.
func Subscriptions(st *Store) int {
	st.mu.Lock()
	defer st.mu.Unlock()
	return len(st.subs)
}

// Decode is decode, for the fuzz test.
var Decode = decode

// Validate is the check every write makes of its values.
func Validate(v *structpb.Struct) error {
	_, _, err := encode(v)
	return err
}
