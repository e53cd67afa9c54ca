-- The shop's schema. Written by the primary only; replicas serve catalog reads.

CREATE TABLE users (
    id            BIGSERIAL PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE products (
    id          BIGSERIAL PRIMARY KEY,
    sku         TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    price_cents BIGINT NOT NULL CHECK (price_cents >= 0),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE orders (
    id          UUID PRIMARY KEY,
    user_id     BIGINT NOT NULL REFERENCES users (id),
    status      TEXT NOT NULL CHECK (status IN ('pending', 'paid', 'payment_failed', 'shipped')),
    total_cents BIGINT NOT NULL CHECK (total_cents >= 0),
    reason      TEXT,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX orders_user ON orders (user_id);

CREATE TABLE order_items (
    order_id    UUID NOT NULL REFERENCES orders (id),
    product_id  BIGINT NOT NULL REFERENCES products (id),
    quantity    INT NOT NULL CHECK (quantity > 0),
    price_cents BIGINT NOT NULL,
    PRIMARY KEY (order_id, product_id)
);

-- Transactional outbox: written in the same transaction as the state change it announces,
-- published by a relay; a broker outage delays messages, never loses them.
CREATE TABLE outbox (
    id         BIGSERIAL PRIMARY KEY,
    topic      TEXT NOT NULL,
    key        TEXT NOT NULL,
    payload    JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- One row per order: the primary key makes payment and shipping idempotent under redelivery.
CREATE TABLE payments (
    order_id     UUID PRIMARY KEY REFERENCES orders (id),
    provider_ref TEXT NOT NULL,
    amount_cents BIGINT NOT NULL,
    attempts     INT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE shipments (
    order_id   UUID PRIMARY KEY REFERENCES orders (id),
    tracking   TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- A small catalog. 'test-decline-card' is the simulated provider's magic product: orders with
-- it are always declined, like a payment provider's test card numbers.
INSERT INTO products (sku, name, price_cents)
SELECT 'sku-' || lpad(g::text, 3, '0'), 'Flash sale item ' || g, 499 + (g * 137) % 9500
FROM generate_series(1, 60) AS g;
INSERT INTO products (sku, name, price_cents) VALUES ('test-decline-card', 'Always declined (test)', 100);
