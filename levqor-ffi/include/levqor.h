/* Levqor C ABI. See levqor-ffi/src/lib.rs for ownership rules. */
#ifndef LEVQOR_H
#define LEVQOR_H

#include <stddef.h>
#include <stdint.h>

typedef enum LevqorStatus {
  LevqorOk = 0,
  LevqorErrInvalid = 1,
  LevqorErrNotFound = 2,
  LevqorErrAuth = 3,
  LevqorErrForbidden = 4,
  LevqorErrPayment = 5,
  LevqorErrConflict = 6,
  LevqorErrLimit = 7,
  LevqorErrUnavailable = 8,
  LevqorErrInternal = 9,
} LevqorStatus;

/* Validates a workflow (len bytes of UTF-8 JSON). *out_report, when out_report is not NULL,
 * receives a JSON report the caller frees with levqor_string_free. */
LevqorStatus levqor_workflow_validate(const uint8_t *json, size_t len, char **out_report);

/* Frees a string returned by Levqor; NULL is ignored. */
void levqor_string_free(char *s);

#endif /* LEVQOR_H */
