# Build helpers shared by every component.
#
#   plfm_add_library(NAME SOURCES ... DEPS ... [PUBLIC_DEPS ...])
#   plfm_add_executable(NAME SOURCES ... DEPS ...)
#   plfm_add_test(NAME SOURCES ... DEPS ... LABELS unit|integration|e2e [TIMEOUT s])
#
# Unit tests are registered per GoogleTest case so that `ctest -L unit` reports
# each one. Integration and e2e tests are registered as one ctest test per
# binary, because each binary starts its expensive fixtures (a PostgreSQL
# cluster, microVMs) once and shares them between its cases.
include(GoogleTest)

set(PLFM_WARNINGS -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor
    -Wold-style-cast -Wcast-align -Wunused -Woverloaded-virtual
    -Wnull-dereference -Wformat=2 -Wimplicit-fallthrough)

function(plfm_target_defaults target)
  target_compile_options(${target} PRIVATE ${PLFM_WARNINGS})
  if(PLFM_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
  if(PLFM_SANITIZE)
    target_compile_options(${target} PRIVATE -fsanitize=address,undefined
                           -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
    target_link_options(${target} PRIVATE -fsanitize=address,undefined)
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
  plfm_target_defaults(${name})
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
  endif()
endfunction()
