# What agent_bench and density_bench share (agent_bench_support.h): the agent
# on a plan file, the AgentWorld of the build tree, /proc readings.
plfm_add_library(plfm_agent_bench_support
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/agent_bench_support.cc
  PUBLIC_DEPS plfm_agent plfm_agent_testing)
target_include_directories(plfm_agent_bench_support PUBLIC ${CMAKE_CURRENT_LIST_DIR})
target_compile_definitions(plfm_agent_bench_support PRIVATE
  PLFM_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
  PLFM_VT_INIT_BIN="$<TARGET_FILE:vt-init>"
  PLFM_TEST_WORKLOAD_BIN="$<TARGET_FILE:vt_test_workload>")
add_dependencies(plfm_agent_bench_support vt-init vt_test_workload)

# bench/agent_bench: the node agent with real microVMs (see agent_bench.cc).
plfm_add_executable(agent_bench
  SOURCES agent_bench.cc
  DEPS plfm_agent_bench_support)
