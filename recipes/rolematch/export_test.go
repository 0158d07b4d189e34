package rolematch

import "testing"

// SetTestHookBeforeCreate sets testHookBeforeCreate for the test's duration.
func SetTestHookBeforeCreate(t *testing.T, f func(path string)) {
	testHookBeforeCreate = f
	t.Cleanup(func() { testHookBeforeCreate = nil })
}

// SetTestHookUnusableSpec sets testHookUnusableSpec for the test's duration.
func SetTestHookUnusableSpec(t *testing.T, f func(role string)) {
	testHookUnusableSpec = f
	t.Cleanup(func() { testHookUnusableSpec = nil })
}

// SetTestHookStrayKept sets testHookStrayKept for the test's duration.
func SetTestHookStrayKept(t *testing.T, f func(path string)) {
	testHookStrayKept = f
	t.Cleanup(func() { testHookStrayKept = nil })
}
