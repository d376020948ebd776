# Build helpers shared by every component.
#
#   plfm_add_library(NAME SOURCES ... DEPS ... [PUBLIC_DEPS ...])
#   plfm_add_executable(NAME SOURCES ... DEPS ...)
#   plfm_add_test(NAME SOURCES ... DEPS ... LABELS unit|integration|e2e [TIMEOUT s])
#   plfm_add_test_library(NAME SOURCES ... DEPS ...)   test support compiled once
#
# Unit tests are registered per GoogleTest case so that `ctest -L unit` reports
# each one. Integration and e2e tests are registered as one ctest test per
# binary, because each binary starts its expensive fixtures (a PostgreSQL
# cluster, microVMs) once and shares them between its cases.
include(GoogleTest)

set(PLFM_WARNINGS -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor
    -Wold-style-cast -Wcast-align -Wunused -Woverloaded-virtual
    -Wnull-dereference -Wformat=2 -Wimplicit-fallthrough)

# Debug info of RelWithDebInfo builds (PLFM_DEBUG_INFO, top-level CMakeLists.txt):
# "lines" adds -g1 after CMake's -g (the last -g level wins): line tables and
# function names, enough for backtraces, sanitizer reports and perf, at about
# a quarter less compile time on template-heavy units. "full" keeps -g.
function(plfm_target_defaults target)
  target_compile_options(${target} PRIVATE ${PLFM_WARNINGS})
  if(PLFM_DEBUG_INFO STREQUAL "lines")
    target_compile_options(${target} PRIVATE $<$<CONFIG:RelWithDebInfo>:-g1>)
  endif()
  if(PLFM_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
  if(PLFM_SANITIZE)
    target_compile_options(${target} PRIVATE -fsanitize=address,undefined
                           -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
    target_link_options(${target} PRIVATE -fsanitize=address,undefined)
  endif()
endfunction()

# Test code (test binaries and test support libraries) is compiled at
# PLFM_TEST_OPTIMIZE (-O0 by default) in optimized builds: most of a test
# unit's compile time is GoogleTest and nlohmann-json templates, which the
# optimizer spends long on for no gain at run time; the code under test is
# in the product libraries, compiled at -O2.
function(plfm_test_defaults target)
  plfm_target_defaults(${target})
  if(PLFM_TEST_OPTIMIZE)
    target_compile_options(${target} PRIVATE
      $<$<CONFIG:RelWithDebInfo,Release>:${PLFM_TEST_OPTIMIZE}>)
  endif()
endfunction()

# The test code's precompiled header (PLFM_PCH): GoogleTest, gMock,
# nlohmann-json and the standard headers, built once per build dir by
# plfm_test_pch with the test code's flags (plfm_test_defaults, GoogleTest's
# definitions) and reused by every test binary and test library.
# - GCC uses it only where the -D values it saw are unchanged. A target's
#   own definitions (PLFM_*, FMT_SHARED) are not named in these headers, so
#   they do not matter; a target whose flags differ fails loudly
#   (-Winvalid-pch under -Werror) instead of parsing the headers again.
# - fmt stays out: FMT_SHARED, defined for some targets only, changes its
#   declarations.
# - Product code gets none: GCC 12 loses libstdc++'s diagnostic pragmas
#   inside a PCH (GCC PR 64117), so -O2 code reports false -Warray-bounds in
#   <string>. Test code at -O0 (PLFM_TEST_OPTIMIZE) runs no such analysis, so
#   the header is used only then.
# - clang-tidy does not use it (scripts/check strips it).
function(plfm_pch_targets)
  add_library(plfm_test_pch STATIC ${PROJECT_SOURCE_DIR}/cmake/pch.cc)
  target_link_libraries(plfm_test_pch PRIVATE GTest::gtest GTest::gmock
    nlohmann_json::nlohmann_json)
  plfm_test_defaults(plfm_test_pch)
  target_precompile_headers(plfm_test_pch PRIVATE
    <gtest/gtest.h> <gmock/gmock.h> <nlohmann/json.hpp>
    <algorithm> <array> <atomic> <chrono> <condition_variable> <cstdint>
    <cstring> <filesystem> <fstream> <functional> <map> <memory> <mutex>
    <optional> <set> <sstream> <string> <string_view> <thread>
    <unordered_map> <utility> <vector>)
endfunction()

function(plfm_use_test_pch target)
  if(PLFM_PCH)
    target_precompile_headers(${target} REUSE_FROM plfm_test_pch)
  endif()
endfunction()

function(plfm_add_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS;PUBLIC_DEPS" ${ARGN})
  add_library(${name} STATIC ${ARG_SOURCES})
  add_library(plfm::${name} ALIAS ${name})
  target_include_directories(${name} PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/include)
  target_link_libraries(${name} PUBLIC ${ARG_PUBLIC_DEPS} PRIVATE ${ARG_DEPS})
  plfm_target_defaults(${name})
endfunction()

# A static library of test support code (fixtures, harnesses) that several
# test binaries share: compiled once instead of once per test binary.
function(plfm_add_test_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS;PUBLIC_DEPS" ${ARGN})
  add_library(${name} STATIC ${ARG_SOURCES})
  target_link_libraries(${name} PUBLIC ${ARG_PUBLIC_DEPS} GTest::gtest GTest::gmock
    PRIVATE ${ARG_DEPS})
  target_compile_definitions(${name} PRIVATE
    PLFM_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
    PLFM_TEST_DIR="${CMAKE_CURRENT_SOURCE_DIR}")
  plfm_test_defaults(${name})
  plfm_use_test_pch(${name})
endfunction()

function(plfm_add_executable name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS})
  plfm_target_defaults(${name})
endfunction()

function(plfm_add_test name)
  cmake_parse_arguments(ARG "" "TIMEOUT" "SOURCES;DEPS;LABELS" ${ARGN})
  if(NOT ARG_LABELS)
    message(FATAL_ERROR "plfm_add_test(${name}): LABELS unit|integration|e2e is required")
  endif()
  foreach(label IN LISTS ARG_LABELS)
    if(NOT label MATCHES "^(unit|integration|e2e)$")
      message(FATAL_ERROR "plfm_add_test(${name}): unknown label '${label}'")
    endif()
  endforeach()
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gtest_main GTest::gmock)
  target_compile_definitions(${name} PRIVATE
    PLFM_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
    PLFM_TEST_DIR="${CMAKE_CURRENT_SOURCE_DIR}")
  plfm_test_defaults(${name})
  plfm_use_test_pch(${name})
  if("unit" IN_LIST ARG_LABELS)
    if(NOT ARG_TIMEOUT)
      set(ARG_TIMEOUT 30)
    endif()
    gtest_discover_tests(${name} DISCOVERY_MODE PRE_TEST
      PROPERTIES LABELS "${ARG_LABELS}" TIMEOUT ${ARG_TIMEOUT})
  else()
    if(NOT ARG_TIMEOUT)
      set(ARG_TIMEOUT 300)
    endif()
    add_test(NAME ${name} COMMAND ${name} --gtest_brief=1)
    set_tests_properties(${name} PROPERTIES LABELS "${ARG_LABELS}" TIMEOUT ${ARG_TIMEOUT})
    # e2e tests boot microVMs under TCG on two cores: one at a time, so that
    # their boot deadlines measure the platform, not a neighbour's boots.
    if("e2e" IN_LIST ARG_LABELS)
      set_tests_properties(${name} PROPERTIES RUN_SERIAL TRUE)
    endif()
  endif()
endfunction()

# plfm_embed_sql(OUT_VAR DIR NAMESPACE FUNCTION)
# Generates a .cc defining
#   const std::vector<std::pair<std::string_view, std::string_view>>& NAMESPACE::FUNCTION();
# that returns every DIR/*.sql as (file name, contents), sorted by name, so a
# binary carries its migrations. Editing, adding or removing a file re-runs
# CMake.
function(plfm_embed_sql out_var dir ns fn)
  file(GLOB sql_files CONFIGURE_DEPENDS "${dir}/*.sql")
  list(SORT sql_files)
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${sql_files})
  set(body "")
  foreach(f IN LISTS sql_files)
    get_filename_component(name "${f}" NAME)
    file(READ "${f}" content)
    string(APPEND body "      {\"${name}\", R\"plfm_sql(${content})plfm_sql\"},\n")
  endforeach()
  set(out "${CMAKE_CURRENT_BINARY_DIR}/${fn}_embedded.cc")
  file(WRITE "${out}.tmp"
"// Generated by plfm_embed_sql from ${dir}. Do not edit.
#include <string_view>
#include <utility>
#include <vector>

namespace ${ns} {
const std::vector<std::pair<std::string_view, std::string_view>>& ${fn}() {
  static const std::vector<std::pair<std::string_view, std::string_view>> files = {
${body}  };
  return files;
}
}  // namespace ${ns}
")
  file(COPY_FILE "${out}.tmp" "${out}" ONLY_IF_DIFFERENT)
  set(${out_var} "${out}" PARENT_SCOPE)
endfunction()

# plfm_add_fuzzer(NAME SOURCES ... DEPS ... CORPUS dir)
# SOURCES define LLVMFuzzerTestOneInput. In a normal build the target links a
# small replay driver and runs every file of CORPUS as a unit test
# (`<NAME>_corpus`), so the seed corpus and every crash we ever fixed stay
# regression tests. With -DPLFM_FUZZ=ON (clang; see `make fuzz`) the target is
# a real libFuzzer binary.
function(plfm_add_fuzzer name)
  cmake_parse_arguments(ARG "" "CORPUS" "SOURCES;DEPS" ${ARGN})
  if(NOT ARG_CORPUS)
    message(FATAL_ERROR "plfm_add_fuzzer(${name}): CORPUS dir is required")
  endif()
  if(PLFM_FUZZ)
    add_executable(${name} ${ARG_SOURCES})
    target_link_options(${name} PRIVATE -fsanitize=fuzzer)
  else()
    add_executable(${name} ${ARG_SOURCES} ${PROJECT_SOURCE_DIR}/libs/testing/src/fuzz_replay_main.cc)
    add_test(NAME ${name}_corpus COMMAND ${name} ${ARG_CORPUS})
    set_tests_properties(${name}_corpus PROPERTIES LABELS unit TIMEOUT 60)
  endif()
  target_link_libraries(${name} PRIVATE ${ARG_DEPS})
  plfm_target_defaults(${name})
  set_property(GLOBAL APPEND PROPERTY PLFM_FUZZERS "${name}=${ARG_CORPUS}")
endfunction()

# plfm_link_static(TARGET [OPTIONS...]): links TARGET as a static executable
# (guest binaries that must run without the host's libraries). GCC refuses
# -static with the sanitizers, so sanitizer and fuzz builds link dynamically:
# those builds run the programs on the host only.
function(plfm_link_static target)
  if(NOT PLFM_SANITIZE AND NOT PLFM_FUZZ)
    target_link_options(${target} PRIVATE -static ${ARGN})
  endif()
endfunction()
