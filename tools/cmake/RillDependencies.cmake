# Every dependency is a Debian package found through find_package or find_path; nothing is downloaded.
find_package(Threads REQUIRED)

if(RILL_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()
if(RILL_BUILD_BENCH OR RILL_BUILD_TOOLS OR RILL_BUILD_PERF)
  find_package(benchmark REQUIRED)
  # libconcurrentqueue-dev and libreaderwriterqueue-dev ship headers only, without a CMake package.
  find_path(RILL_CONCURRENTQUEUE_INCLUDE concurrentqueue/concurrentqueue.h REQUIRED)
  find_path(RILL_READERWRITERQUEUE_INCLUDE readerwriterqueue/readerwriterqueue.h REQUIRED)
  find_package(Boost 1.74 REQUIRED)
  add_library(rill_peer_queues INTERFACE)
  target_include_directories(rill_peer_queues SYSTEM INTERFACE
    ${RILL_CONCURRENTQUEUE_INCLUDE} ${RILL_READERWRITERQUEUE_INCLUDE} ${Boost_INCLUDE_DIRS})
endif()

# mimalloc replaces malloc process-wide when linked (Debian ships only the shared library), so it is
# offered to rill's own executables and never attached to rill_core.
add_library(rill_exe_allocator INTERFACE)
if(RILL_WITH_MIMALLOC)
  find_package(mimalloc 2 REQUIRED)
  target_link_libraries(rill_exe_allocator INTERFACE mimalloc)
endif()
