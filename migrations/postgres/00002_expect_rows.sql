-- rotator_expect_rows lets a pipelined transaction check, on the server,
-- that a write matched a row: the check fails the transaction before the
-- COMMIT queued behind it runs. It returns n, or raises SQLSTATE RTR01 with
-- detail as the message when n is 0.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION rotator_expect_rows(n bigint, detail text) RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF n = 0 THEN
        RAISE EXCEPTION USING ERRCODE = 'RTR01', MESSAGE = coalesce(detail, '');
    END IF;
    RETURN n;
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION rotator_expect_rows(bigint, text);
