package metrics

var (
	registrations = counter("zkactor_registrations_total", "{registration}",
		"Registers that reached ZooKeeper, by result (ok, error)")
	unregistrations = counter("zkactor_unregistrations_total", "{registration}",
		"Unregisters of a registration this node made, by result (ok, error: the delete is retried in the background)")
)

// Registration records the outcome of a Register.
func Registration(err error) { registrations.Add(background, 1, result(err)...) }

// Unregistration records the outcome of an Unregister.
func Unregistration(err error) { unregistrations.Add(background, 1, result(err)...) }
