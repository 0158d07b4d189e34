package lock

import "github.com/zkactor/zkactor/internal/protected"

// A waiter's znode is named _c_<guid>-l-<sequence>: the prefix and GUID (32
// hex digits, one per Lock call) protect it, so that after a connection lost
// during the create the caller finds its own znode; ZooKeeper appends the
// 10-digit sequence number, which orders the queue (see package protected).
// Names of any other shape are not waiters and are passed over.
var waiters = protected.Shape{Mark: "-l-"}
