/*
 * The node programs' log lines (log.h): formatted into one buffer and written
 * with a single write(2), so lines from several threads never interleave.
 */
#include "node/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static const char *prog_name = "bkv";
static enum bkv_log_level max_level = BKV_LOG_INFO;
static const char *const level_names[] = {"error", "warn", "info", "debug"};

void bkv_log_init(const char *prog, enum bkv_log_level level)
{
    prog_name = prog;
    max_level = level;
}

int bkv_log_level_parse(const char *s, enum bkv_log_level *out)
{
    for (int i = 0; i <= BKV_LOG_DEBUG; i++)
        if (strcmp(s, level_names[i]) == 0) {
            *out = (enum bkv_log_level)i;
            return 0;
        }
    return -1;
}

void bkv_log(enum bkv_log_level level, const char *fmt, ...)
{
    if (level > max_level)
        return;
    char line[1024];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    int n = snprintf(line, sizeof(line),
                     "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s[%ld] %s: ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     (long)tv.tv_usec / 1000, prog_name, (long)getpid(), level_names[level]);
    if (n < 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2;
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}
