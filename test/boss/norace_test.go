//go:build !race

package boss_test

const raceBuild = false
