# exec_bench: `vt exec` latency, throughput and relay memory through `vt dev`
# with a real microVM (root).
plfm_add_executable(exec_bench
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/exec_bench.cc
  DEPS plfm_vt_dev_driver)
target_compile_definitions(exec_bench PRIVATE PLFM_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
add_dependencies(exec_bench vt plfm-control-plane plfm-node-agent plfm-ingress vt-init hello)
