-- Payment records every decision, not only successes: orders (the owner of an order's status)
-- learns a failure from payment-processed, and a redelivered order is recognised by its row.
ALTER TABLE payments
    ALTER COLUMN provider_ref DROP NOT NULL,
    ADD COLUMN outcome TEXT NOT NULL DEFAULT 'paid' CHECK (outcome IN ('paid', 'failed')),
    ADD COLUMN reason TEXT,
    ADD CONSTRAINT payments_amount_not_negative CHECK (amount_cents >= 0);
