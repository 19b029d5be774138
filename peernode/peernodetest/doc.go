// Package peernodetest holds fakes and helpers for testing code built on the
// peernode interfaces without a network: an in-memory pair of trust
// sessions (NewTrustSessionPair) to run trust protocols against each other
// or against a test that plays the peer by hand.
package peernodetest
