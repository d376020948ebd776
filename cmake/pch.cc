// The translation unit that builds a precompiled header (plfm_pch_targets in
// cmake/PlfmHelpers.cmake); it has no code of its own.
