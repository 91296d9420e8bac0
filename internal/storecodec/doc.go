// Package storecodec holds what the SQLite and PostgreSQL stores share
// because they must agree to the byte: how a column is encoded, how a row
// reads back into a steps type, and how the migration files are read.
// `deploybot export` copies rows from one store into the other as they
// are, so a run must read back the same from either; one codec for both
// keeps that true by construction rather than by keeping two copies alike.
//
// What differs between the drivers (SQL placeholders, error codes,
// transactions, locks, notifications) stays in each store.
package storecodec
