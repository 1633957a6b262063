/* Atomic file writes: temporary name, fsync, rename, fsync of the directory. */
#include "io/atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int atomic_file_open(atomic_file_t *af, const char *path, tl_err_t *err) {
    memset(af, 0, sizeof *af);
    size_t n = strlen(path) + 32;
    af->path = strdup(path);
    af->tmp = malloc(n);
    if (!af->path || !af->tmp) {
        atomic_file_abort(af);
        return tl_fail(err, "%s: out of memory", path);
    }
    snprintf(af->tmp, n, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(af->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        int e = errno;
        free(af->tmp);
        af->tmp = NULL;
        atomic_file_abort(af);
        return tl_fail(err, "%s: cannot create temporary file: %s", path, strerror(e));
    }
    af->fp = fdopen(fd, "wb");
    if (!af->fp) {
        close(fd);
        atomic_file_abort(af);
        return tl_fail(err, "%s: cannot open temporary file: %s", path, strerror(errno));
    }
    setvbuf(af->fp, NULL, _IOFBF, 1 << 20);
    return 0;
}

int atomic_file_write(atomic_file_t *af, const void *buf, size_t n, tl_err_t *err) {
    if (n && fwrite(buf, 1, n, af->fp) != n)
        return tl_fail(err, "%s: write failed: %s", af->path, strerror(errno));
    return 0;
}

int atomic_file_pad(atomic_file_t *af, size_t n, tl_err_t *err) {
    static const unsigned char zeros[256];
    while (n) {
        size_t k = n < sizeof zeros ? n : sizeof zeros;
        if (atomic_file_write(af, zeros, k, err)) return -1;
        n -= k;
    }
    return 0;
}

static void sync_parent_dir(const char *path) {
    char *dir = strdup(path);
    if (!dir) return;
    char *slash = strrchr(dir, '/');
    const char *d = ".";
    if (slash == dir) d = "/";
    else if (slash) {
        *slash = '\0';
        d = dir;
    }
    int fd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd); /* best effort: some file systems refuse fsync on directories */
        close(fd);
    }
    free(dir);
}

int atomic_file_commit(atomic_file_t *af, tl_err_t *err) {
    int rc = 0;
    if (fflush(af->fp) != 0 || fsync(fileno(af->fp)) != 0)
        rc = tl_fail(err, "%s: flush failed: %s", af->path, strerror(errno));
    if (fclose(af->fp) != 0 && rc == 0) rc = tl_fail(err, "%s: close failed: %s", af->path, strerror(errno));
    af->fp = NULL;
    if (rc == 0 && rename(af->tmp, af->path) != 0)
        rc = tl_fail(err, "%s: cannot rename temporary file into place: %s", af->path, strerror(errno));
    if (rc == 0) {
        sync_parent_dir(af->path);
        free(af->tmp);
        af->tmp = NULL;
    }
    atomic_file_abort(af);
    return rc;
}

void atomic_file_abort(atomic_file_t *af) {
    if (af->fp) fclose(af->fp);
    if (af->tmp) unlink(af->tmp);
    free(af->tmp);
    free(af->path);
    memset(af, 0, sizeof *af);
}

int atomic_file_write_all(const char *path, const void *buf, size_t n, tl_err_t *err) {
    atomic_file_t af;
    if (atomic_file_open(&af, path, err)) return -1;
    if (atomic_file_write(&af, buf, n, err)) {
        atomic_file_abort(&af);
        return -1;
    }
    return atomic_file_commit(&af, err);
}
