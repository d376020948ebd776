// Repeats every failed assertion (file, line, message) at the very end of a
// test program's output. Long tests (the e2e ones) print pages of progress,
// and a CI log that keeps only the tail would otherwise lose the one line
// that says what went wrong.
//
//   const auto* const kSummary = plfm::testing::installFailureSummary();  // file scope
#pragma once

namespace plfm::testing {

// Registers a gtest listener once; returns a non-null token so it can be
// called in a static initializer.
const void* installFailureSummary();

}  // namespace plfm::testing
