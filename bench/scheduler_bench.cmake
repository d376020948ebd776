# The pure scheduling logic at 5,000 nodes / 100,000 instances (libs/reconcile).
plfm_add_executable(scheduler_bench
  SOURCES scheduler_bench.cc
  DEPS plfm_reconcile)
