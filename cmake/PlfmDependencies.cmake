# Every third-party dependency comes from a Debian bookworm package
# (see scripts/install-deps). Each is wrapped in one imported target here so
# that the rest of the build names dependencies, not paths.
find_package(Threads REQUIRED)
find_package(PkgConfig REQUIRED)
find_package(OpenSSL REQUIRED)
find_package(fmt REQUIRED)
find_package(spdlog REQUIRED)
find_package(nlohmann_json 3.11 REQUIRED)
find_package(tl-expected REQUIRED)
find_package(PostgreSQL REQUIRED)
find_package(GTest REQUIRED)

# The PostgreSQL server binaries (initdb, postgres) used by the test harness.
find_program(PLFM_PG_BIN_INITDB initdb
  PATHS /usr/lib/postgresql/15/bin NO_DEFAULT_PATH)
if(NOT PLFM_PG_BIN_INITDB)
  find_program(PLFM_PG_BIN_INITDB initdb)
endif()
if(PLFM_PG_BIN_INITDB)
  get_filename_component(PLFM_PG_BINDIR "${PLFM_PG_BIN_INITDB}" DIRECTORY)
else()
  set(PLFM_PG_BINDIR "")
  message(WARNING "initdb not found: integration tests will fail (run 'make deps')")
endif()
