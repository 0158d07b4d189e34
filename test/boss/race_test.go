//go:build race

package boss_test

// raceBuild: the tests run with -race, so the command under test is built with it too.
const raceBuild = true
