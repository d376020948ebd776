# bench/volume_bench: volume snapshots with real microVMs (see volume_bench.cc).
plfm_add_executable(volume_bench
  SOURCES volume_bench.cc
  DEPS plfm_agent plfm_agent_testing)
target_compile_definitions(volume_bench PRIVATE
  PLFM_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
  PLFM_VT_INIT_BIN="$<TARGET_FILE:vt-init>"
  PLFM_TEST_WORKLOAD_BIN="$<TARGET_FILE:vt_test_workload>")
add_dependencies(volume_bench vt-init vt_test_workload)
