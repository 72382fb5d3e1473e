// Package leadership elects one leader among replicas that share a Lock (a
// Kubernetes Lease, through package kubelease) and runs the leader's work
// under a term that is cancelled by a timer before any other replica could
// take the lock.
//
// The promise: no two replicas act as leader at the same moment, as long as
// their clock rates differ by less than Config.MaxClockDrift. The leader
// counts its validity from the moment it sent its last successful write; a
// candidate counts the holder's lease from the moment it observed the record
// change; every write is a compare-and-swap; the release is written only
// after the work has returned; and each term carries a fencing token that
// strictly increases. See DESIGN.md for the argument.
package leadership
