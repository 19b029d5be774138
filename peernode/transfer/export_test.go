package transfer

// SetChunkHook installs f to see, and possibly modify, every chunk s is
// about to send (nil removes it). Tests use it to corrupt or stall a
// transfer at a chosen offset.
func SetChunkHook(s *Service, f func(id ID, offset uint64, data []byte)) {
	if f == nil {
		s.chunkHook.Store(nil)
		return
	}
	s.chunkHook.Store(&f)
}
