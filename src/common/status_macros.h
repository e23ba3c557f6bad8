// RETURN_IF_ERROR / ASSIGN_OR_RETURN for absl::Status (Abseil 20220623 has neither).
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define DISTRNN_CONCAT_INNER(a, b) a##b
#define DISTRNN_CONCAT(a, b) DISTRNN_CONCAT_INNER(a, b)

#define RETURN_IF_ERROR(expr)                        \
  do {                                               \
    ::absl::Status distrnn_status_ = (expr);         \
    if (!distrnn_status_.ok()) return distrnn_status_; \
  } while (0)

#define ASSIGN_OR_RETURN(lhs, expr) \
  DISTRNN_ASSIGN_OR_RETURN_IMPL(DISTRNN_CONCAT(distrnn_statusor_, __LINE__), lhs, expr)

#define DISTRNN_ASSIGN_OR_RETURN_IMPL(statusor, lhs, expr) \
  auto statusor = (expr);                                  \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = std::move(statusor).value()
