# A precompiled header for the tests (docs/engineering/dev-environment.md,
# "Build time").
#
# plfm_pch_test holds GoogleTest, nlohmann-json, tl::expected and the standard
# library headers most tests include. It is built once per build dir and shared
# through `target_precompile_headers(REUSE_FROM)` by every plfm_add_test and
# plfm_add_test_library target: a new test made with those helpers picks it up
# with no change of its own.
#
# Only tests: loading the 150 MB PCH costs about 0.6 s of CPU per unit, more
# than it saves in a service unit that includes a few standard headers (measured
# in the doc above); almost every test includes gtest and json, where it saves
# 1-2 s. Heavier production units keep their heavy headers behind small headers
# of our own instead (Beast/Asio in libs/http/src only).
#
# The header is force-included (`-include cmake_pch.hxx`), so a unit still has
# to include what it uses: clang-tidy (scripts/check) gets the compile commands
# without the PCH and fails on a missing include.
#
# A shared PCH is valid only for units compiled with the same flags; every test
# gets them from plfm_target_defaults, and -Winvalid-pch with -Werror turns a
# mismatch into a build error rather than a silent fallback. Headers configured
# by a macro in our sources (toml++ with TOML_EXCEPTIONS, valijson) or by a
# per-target definition (fmt/spdlog's FMT_SHARED) stay out.
#
# GCC 12 forgets `#pragma GCC diagnostic` state inside a PCH (GCC PR 64117,
# fixed in GCC 13). libstdc++'s char_traits.h uses one to silence
# -Warray-bounds, -Wstringop-overflow and -Wstringop-overread in its inlined
# memcpy, which then fire as false positives in tests that build strings (e.g.
# `std::string(40, '4') + "E0"`). Tests built with the PCH turn those three off;
# production code, built without it, keeps them.
#
# -DPLFM_PCH=OFF turns it off. It is off for fuzz builds (clang, see make fuzz)
# and for compilers other than GCC.
option(PLFM_PCH "A precompiled header for the tests (GoogleTest, nlohmann-json)" ON)
if(PLFM_FUZZ OR NOT CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
  set(PLFM_PCH OFF)
endif()

set(PLFM_PCH_TEST_HEADERS
  <algorithm> <chrono> <cstdint> <filesystem> <fstream> <functional> <map>
  <memory> <optional> <string> <string_view> <thread> <utility> <vector>
  <nlohmann/json.hpp> <tl/expected.hpp> <gtest/gtest.h>)
set(PLFM_PCH_WARNINGS -Wno-array-bounds -Wno-stringop-overflow -Wno-stringop-overread)

if(PLFM_PCH)
  set(plfm_pch_src "${CMAKE_BINARY_DIR}/plfm_pch_test.cc")
  file(CONFIGURE OUTPUT "${plfm_pch_src}"
    CONTENT "// The unit that builds the tests' precompiled header (cmake/PlfmPch.cmake).\n")
  add_library(plfm_pch_test OBJECT "${plfm_pch_src}")
  target_link_libraries(plfm_pch_test PRIVATE nlohmann_json::nlohmann_json tl::expected
    GTest::gtest GTest::gmock)
  target_precompile_headers(plfm_pch_test PRIVATE ${PLFM_PCH_TEST_HEADERS})
  plfm_target_defaults(plfm_pch_test)
  target_compile_options(plfm_pch_test PRIVATE ${PLFM_PCH_WARNINGS})
endif()

# plfm_use_test_pch(TARGET): called by plfm_add_test and plfm_add_test_library.
function(plfm_use_test_pch target)
  if(PLFM_PCH)
    target_precompile_headers(${target} REUSE_FROM plfm_pch_test)
    target_compile_options(${target} PRIVATE ${PLFM_PCH_WARNINGS})
  endif()
endfunction()
