// Test support: Relacy (Debian relacy-dev) included with its warnings quieted, and a runner that model-checks
// one suite (with the full-search scheduler unless told otherwise) and keeps Relacy's report. Include only
// where RILL_SANITIZER_BUILD is not defined (relacy.hpp replaces the global operator new and delete).
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <ostream>
#include <streambuf>
#include <string>
#include <vector>

// Relacy is C++03-era code: quiet its own warnings only (it lives in a system include directory, so most are
// silenced already; these cover what the project's flags still report from template instantiations).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wall"
#pragma GCC diagnostic ignored "-Wextra"
#pragma GCC diagnostic ignored "-Wpedantic"
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wold-style-cast"
#pragma GCC diagnostic ignored "-Wnull-dereference"
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"
#pragma GCC diagnostic ignored "-Woverloaded-virtual"
#include <relacy/relacy.hpp>
#pragma GCC diagnostic pop
// relacy.hpp redefines new, delete and the C allocation functions to track a test's allocations; the models
// allocate nothing, and GoogleTest's macros need the real `= delete`.
#undef new
#undef delete
#undef malloc
#undef calloc
#undef realloc
#undef free

namespace rill::test {

// Relacy's report goes to an std::ostream. It must not allocate: Relacy's header replaces operator new and
// delete with its own tracking versions while a simulation runs, and a buffer allocated before the run
// but grown during it would be freed by the wrong allocator. So: a fixed buffer; text beyond it is dropped.
class fixed_log : public std::streambuf {
 public:
  fixed_log() : buffer_(64 * 1024) { setp(buffer_.data(), buffer_.data() + buffer_.size()); }
  std::string text() const { return std::string(pbase(), pptr()); }

 protected:
  int_type overflow(int_type ch) override { return traits_type::not_eof(ch); }

 private:
  std::vector<char> buffer_;
};

struct model_result {
  rl::test_result_e result = rl::test_result_success;
  rl::iteration_t iterations = 0;
  std::string log;
};

// Runs a suite under Relacy's exhaustive (full search) scheduler, or another one (`iterations`: how many
// executions a random search runs); Relacy's report goes to `log`.
template <class Suite>
model_result check_model(rl::scheduler_type_e search = rl::sched_full, rl::iteration_t iterations = 1000) {
  fixed_log log;
  std::ostream out(&log);
  rl::test_params params;
  params.search_type = search;
  params.iteration_count = iterations;
  params.output_stream = &out;
  params.progress_stream = &out;
  rl::simulate<Suite>(params);
  model_result r;
  r.result = params.test_result;
  r.iterations = params.stop_iteration;
  r.log = log.text();
  return r;
}

// Passing models explore more than one execution, or the model did not branch. `iterations`: for a random
// search.
template <class Suite>
void expect_holds(rl::scheduler_type_e search = rl::sched_full, rl::iteration_t iterations = 1000) {
  const model_result r = check_model<Suite>(search, iterations);
  EXPECT_EQ(r.result, rl::test_result_success) << r.log;
  EXPECT_GT(r.iterations, 1u) << r.log;
}

// `where`: Relacy's report of the failure, "<what> ..., in <function>", in the execution history it prints.
template <class Suite>
void expect_violation(rl::test_result_e result, const std::string& where,
                      rl::scheduler_type_e search = rl::sched_full, rl::iteration_t iterations = 1000) {
  const model_result r = check_model<Suite>(search, iterations);
  EXPECT_EQ(r.result, result) << r.log;
  EXPECT_NE(r.log.find(where), std::string::npos) << r.log;
}

}  // namespace rill::test
