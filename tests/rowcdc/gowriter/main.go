// Command gowriter applies a row CDC plan (tests/rowcdc/plan.py) to the sister's
// Postgres as the new service would: pgx v5, one transaction per change, with the plan's
// faults. Changes no service of ours makes (the plan's rogue_* faults) go through a
// second connection named "ops-script".
//
//	gowriter --dsn postgresql://postgres@127.0.0.1:5432/postgres --plan plan.json
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/jackc/pgx/v5"
)

func main() {
	dsn := flag.String("dsn", "", "the sister's Postgres (a libpq URL or key=value string)")
	planPath := flag.String("plan", "", "the plan's JSON file")
	flag.Parse()
	if *dsn == "" || *planPath == "" {
		fmt.Fprintln(os.Stderr, "usage: gowriter --dsn DSN --plan FILE")
		os.Exit(2)
	}
	plan, err := loadPlan(*planPath)
	if err == nil {
		var done int
		done, err = apply(context.Background(), *dsn, plan)
		fmt.Printf("applied %d changes\n", done)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gowriter:", err)
		os.Exit(1)
	}
}

func connect(ctx context.Context, dsn, application string) (*pgx.Conn, error) {
	config, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	config.RuntimeParams["application_name"] = application
	return pgx.ConnectConfig(ctx, config)
}

func apply(ctx context.Context, dsn string, plan *Plan) (int, error) {
	service, err := connect(ctx, dsn, "new-service")
	if err != nil {
		return 0, err
	}
	defer service.Close(ctx)
	ops, err := connect(ctx, dsn, "ops-script")
	if err != nil {
		return 0, err
	}
	defer ops.Close(ctx)
	done := 0
	for _, c := range plan.SisterOrder() {
		query, params, err := statement(c)
		if err != nil {
			return done, err
		}
		conn := service
		if strings.HasPrefix(c.Fault, "rogue_") {
			conn = ops
		}
		err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			tag, err := tx.Exec(ctx, query, params...)
			if err == nil && tag.RowsAffected() != 1 { // a plan that does not fit the table
				err = fmt.Errorf("%d rows changed", tag.RowsAffected())
			}
			return err
		})
		if err != nil {
			return done, fmt.Errorf("%s: %w", c.JoinKey, err)
		}
		done++
	}
	return done, nil
}
