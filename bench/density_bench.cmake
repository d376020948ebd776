# bench/density_bench: idle microVMs booted one after another until a budget
# (count, MemAvailable, idle CPU) is reached (see density_bench.cc).
plfm_add_executable(density_bench
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/density_bench.cc
  DEPS plfm_agent_bench_support)
