# bench/agent_bench: the node agent with real microVMs (see agent_bench.cc).
plfm_add_executable(agent_bench
  SOURCES agent_bench.cc
  DEPS plfm_agent plfm_agent_testing)
target_compile_definitions(agent_bench PRIVATE
  PLFM_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
  PLFM_VT_INIT_BIN="$<TARGET_FILE:vt-init>"
  PLFM_TEST_WORKLOAD_BIN="$<TARGET_FILE:vt_test_workload>")
add_dependencies(agent_bench vt-init vt_test_workload)
