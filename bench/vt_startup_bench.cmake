plfm_add_executable(vt_startup_bench
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/vt_startup_bench.cc
  DEPS)
target_compile_definitions(vt_startup_bench PRIVATE PLFM_VT_BIN="$<TARGET_FILE:vt>")
add_dependencies(vt_startup_bench vt)
