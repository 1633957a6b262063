#include <stdlib.h>
#include <unistd.h>

#include "io/csv.h"
#include "tl_test.h"

static csv_reader_t *open_str(const char *s, tl_err_t *err) {
    csv_reader_t *r = NULL;
    if (csv_open_mem(&r, s, strlen(s), "t.csv", err)) return NULL;
    return r;
}

TEST(quoted_fields_commas_quotes_newlines) {
    tl_err_t err = {{0}};
    csv_reader_t *r = open_str("a,b,c\n\"x,y\",\"he said \"\"hi\"\"\",\"two\nlines\"\nplain,,end\n", &err);
    CHECK(r != NULL);
    if (!r) return;
    CHECK_EQ_INT(csv_n_columns(r), 3);
    CHECK_EQ_INT(csv_column_index(r, "c"), 2);
    CHECK_EQ_INT(csv_column_index(r, "zz"), -1);
    csv_row_t row;
    CHECK_EQ_INT(csv_next(r, &row, &err), CSV_ROW);
    CHECK_STR(row.fields[0], "x,y");
    CHECK_STR(row.fields[1], "he said \"hi\"");
    CHECK_STR(row.fields[2], "two\nlines");
    CHECK_EQ_INT(row.line, 2);
    CHECK_EQ_INT(csv_next(r, &row, &err), CSV_ROW);
    CHECK_STR(row.fields[0], "plain");
    CHECK_STR(row.fields[1], "");
    CHECK_STR(row.fields[2], "end");
    CHECK_EQ_INT(row.line, 4); /* the quoted newline moved it down a line */
    CHECK_EQ_INT(csv_next(r, &row, &err), CSV_EOF);
    csv_close(r);
}

TEST(bom_crlf_and_no_final_newline) {
    tl_err_t err = {{0}};
    csv_reader_t *r = open_str("\xEF\xBB\xBFname,label\r\nJos\xC3\xA9,yes\r\n\r\nAnn,no", &err);
    CHECK(r != NULL);
    if (!r) return;
    CHECK_STR(csv_column_name(r, 0), "name"); /* BOM not part of the name */
    csv_row_t row;
    CHECK_EQ_INT(csv_next(r, &row, &err), CSV_ROW);
    CHECK_STR(row.fields[0], "Jos\xC3\xA9");
    CHECK_STR(row.fields[1], "yes");
    CHECK_EQ_INT(csv_next(r, &row, &err), CSV_ROW);
    CHECK_STR(row.fields[0], "Ann");
    CHECK_STR(row.fields[1], "no");
    CHECK_EQ_INT(row.line, 4);
    CHECK_EQ_INT(csv_next(r, &row, &err), CSV_EOF);
    csv_close(r);
}

TEST(bad_rows_reported_and_skipped) {
    tl_err_t err = {{0}};
    csv_reader_t *r = open_str("a,b\n1,2\n1,2,3\nbad\xC3\x28,x\n\"q\"z,1\n3,4\n\"open,5\n6,7\n", &err);
    CHECK(r != NULL);
    if (!r) return;
    csv_row_t row;
    CHECK_EQ_INT(csv_next(r, &row, &err), CSV_ROW);
    CHECK_EQ_INT(csv_next(r, &row, &err), CSV_BAD_ROW);
    CHECK_CONTAINS(err.msg, "t.csv:3: expected 2 fields, found 3");
    CHECK_EQ_INT(csv_next(r, &row, &err), CSV_BAD_ROW);
    CHECK_CONTAINS(err.msg, "t.csv:4: field 'a' is not valid UTF-8");
    CHECK_EQ_INT(csv_next(r, &row, &err), CSV_BAD_ROW);
    CHECK_CONTAINS(err.msg, "t.csv:5: unexpected character after a closing quote");
    CHECK_EQ_INT(csv_next(r, &row, &err), CSV_ROW);
    CHECK_STR(row.fields[0], "3");
    CHECK_EQ_INT(row.line, 6);
    CHECK_EQ_INT(csv_next(r, &row, &err), CSV_BAD_ROW);
    CHECK_CONTAINS(err.msg, "t.csv:7: unterminated quoted field");
    /* recovery: the line after the unterminated record is read again */
    CHECK_EQ_INT(csv_next(r, &row, &err), CSV_ROW);
    CHECK_STR(row.fields[0], "6");
    CHECK_EQ_INT(row.line, 8);
    CHECK_EQ_INT(csv_next(r, &row, &err), CSV_EOF);
    csv_close(r);
}

TEST(header_errors) {
    tl_err_t err = {{0}};
    CHECK(open_str("", &err) == NULL);
    CHECK_CONTAINS(err.msg, "no header");
    CHECK(open_str("a,b,a\n1,2,3\n", &err) == NULL);
    CHECK_CONTAINS(err.msg, "duplicate column name 'a'");
    csv_reader_t *r;
    CHECK(csv_open(&r, "/nonexistent/x.csv", &err) == -1);
    CHECK_CONTAINS(err.msg, "/nonexistent/x.csv");
}

TEST(utf8_validator) {
    CHECK(csv_utf8_valid("abc", 3));
    CHECK(csv_utf8_valid("\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80", 9));
    CHECK(!csv_utf8_valid("\xC0\xAF", 2));         /* overlong */
    CHECK(!csv_utf8_valid("\xED\xA0\x80", 3));     /* surrogate */
    CHECK(!csv_utf8_valid("\xF4\x90\x80\x80", 4)); /* > U+10FFFF */
    CHECK(!csv_utf8_valid("\xE2\x82", 2));         /* truncated */
    CHECK(!csv_utf8_valid("\x80", 1));
}

TEST(writer_round_trip) {
    char path[] = "/tmp/tl_test_csv_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    tl_err_t err = {{0}};
    csv_writer_t *w;
    CHECK_EQ_INT(csv_writer_open(&w, path, &err), 0);
    const char *hdr[] = {"a", "b", "c"};
    const char *row[] = {"x,y", "say \"hi\"", "line1\nline2"};
    const char *row2[] = {" pad", "plain", ""};
    CHECK_EQ_INT(csv_write_row(w, hdr, 3, &err), 0);
    CHECK_EQ_INT(csv_write_row(w, row, 3, &err), 0);
    CHECK_EQ_INT(csv_write_row(w, row2, 3, &err), 0);
    CHECK_EQ_INT(csv_writer_commit(w, &err), 0);
    FILE *f = fopen(path, "rb");
    char buf[256] = {0};
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    CHECK_EQ_INT(n, strlen(buf));
    CHECK_STR(buf, "a,b,c\n\"x,y\",\"say \"\"hi\"\"\",\"line1\nline2\"\n\" pad\",plain,\n");
    csv_reader_t *r;
    CHECK_EQ_INT(csv_open(&r, path, &err), 0);
    csv_row_t rr;
    CHECK_EQ_INT(csv_next(r, &rr, &err), CSV_ROW);
    for (int i = 0; i < 3; i++) CHECK_STR(rr.fields[i], row[i]);
    CHECK_EQ_INT(csv_next(r, &rr, &err), CSV_ROW);
    for (int i = 0; i < 3; i++) CHECK_STR(rr.fields[i], row2[i]);
    csv_close(r);
    unlink(path);
}

int main(void) {
    RUN(quoted_fields_commas_quotes_newlines);
    RUN(bom_crlf_and_no_final_newline);
    RUN(bad_rows_reported_and_skipped);
    RUN(header_errors);
    RUN(utf8_validator);
    RUN(writer_round_trip);
    return tl_test_summary("test_csv");
}
