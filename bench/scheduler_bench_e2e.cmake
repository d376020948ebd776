# The control plane's scheduler end to end at 5,000 nodes / 100,000 instances:
# views -> reconcile -> instance.allocated events in PostgreSQL (and projected).
plfm_add_executable(scheduler_bench_e2e
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/scheduler_bench_e2e.cc
  DEPS plfm_control_plane_lib plfm_testing)
