/*
 * Embedding Levqor from C: open it (in memory, or on the database named by argv[1]), make a
 * user and a key, screen a text, price and submit a job, run it with the manual engine, and
 * read its result.
 *
 *   cargo build -p levqor-ffi
 *   cc -Wall -Wextra -Werror -I levqor-ffi/include examples/c/main.c \
 *      target/debug/liblevqor_ffi.a -lgcc_s -lutil -lrt -lpthread -lm -ldl -o levqor-example
 *   ./levqor-example                      # or ./levqor-example sqlite:example.db
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "levqor.h"

/* Prints what went wrong and exits. */
static void check(levqor_status status, const char *what) {
  if (status != LEVQOR_OK) {
    fprintf(stderr, "%s failed: status %u, %s: %s\n", what, (unsigned)status,
            levqor_last_error_code(), levqor_last_error());
    exit(1);
  }
}

int main(int argc, char **argv) {
  char config[512];
  snprintf(config, sizeof config,
           "{\"database_url\": \"%s\", \"signup_credits\": 1000}",
           argc > 1 ? argv[1] : "memory");

  levqor_t *lq = NULL;
  check(levqor_open(config, &lq), "levqor_open");

  char *user_id = NULL;
  char *key = NULL;
  check(levqor_user_create(lq, "c-example@example.com", &user_id), "levqor_user_create");
  check(levqor_key_create(lq, user_id, &key), "levqor_key_create");

  levqor_verdict verdict;
  check(levqor_screen(lq, "please summarise this report", &verdict, NULL), "levqor_screen");
  printf("screening: %s\n", verdict == LEVQOR_VERDICT_ALLOW ? "allow" : "not allowed");

  const char *workflow =
      "{\"name\": \"greet\", \"steps\": [{\"id\": \"hello\", \"type\": \"log\","
      " \"message\": \"hello {{input.name}}\"}]}";
  int64_t price = 0;
  check(levqor_quote(lq, key, workflow, &price, NULL), "levqor_quote");
  printf("price: %lld credits\n", (long long)price);

  char request[512];
  snprintf(request, sizeof request, "{\"workflow\": %s, \"input\": {\"name\": \"C\"}}",
           workflow);
  char *job_id = NULL;
  check(levqor_submit(lq, key, request, &job_id, NULL), "levqor_submit");

  /* A bad request changes nothing and says why. */
  levqor_status refused = levqor_submit(lq, key, "{\"workflow\": 7}", NULL, NULL);
  printf("a bad workflow: status %u (%s)\n", (unsigned)refused, levqor_last_error_code());

  uint32_t ran = 0;
  check(levqor_run_due(lq, 10, &ran), "levqor_run_due");

  char *status = NULL;
  char *job = NULL;
  check(levqor_job_get(lq, key, job_id, &status, &job), "levqor_job_get");
  printf("ran %u job(s); job %s: %s\n", ran, job_id, status);
  int ok = strcmp(status, "succeeded") == 0 && strstr(job, "hello C") != NULL;

  int64_t available = 0;
  check(levqor_credit_balance(lq, key, &available, NULL), "levqor_credit_balance");
  printf("credits left: %lld\n", (long long)available);

  levqor_string_free(job);
  levqor_string_free(status);
  levqor_string_free(job_id);
  levqor_string_free(key);
  levqor_string_free(user_id);
  check(levqor_close(lq), "levqor_close");
  return ok ? 0 : 2;
}
