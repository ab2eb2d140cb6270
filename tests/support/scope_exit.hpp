// Test support: runs a callable when a scope ends, however it ends. A failed ASSERT_* returns from the
// thread function early; whatever that thread owed the others (closing a stream, setting a flag, counting
// itself out) must still happen, or the test hangs until ctest's timeout instead of failing with the
// assertion's message.
#pragma once

#include <utility>

namespace rill::test {

template <class Action>
class on_scope_exit {
 public:
  explicit on_scope_exit(Action action) : action_(std::move(action)) {}
  on_scope_exit(const on_scope_exit&) = delete;
  on_scope_exit& operator=(const on_scope_exit&) = delete;
  ~on_scope_exit() { action_(); }

 private:
  Action action_;
};

}  // namespace rill::test
