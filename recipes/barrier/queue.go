package barrier

import "github.com/zkactor/zkactor/internal/protected"

// A participant's znode is named _c_<guid>-p-<sequence>: the prefix and
// GUID (32 hex digits, one per Enter) protect it, so that after a
// connection lost during the create the participant finds its own znode;
// ZooKeeper appends the 10-digit sequence number, which orders the
// participants (Leave waits on the lowest and the highest). Names of any
// other shape are not participants and are passed over (the ready znode
// among them); see package protected.
var participants = protected.Shape{Mark: "-p-"}
