-- Who may change the catalog: an account is a customer unless an operator makes it an admin
-- (UPDATE users SET role = 'admin' WHERE email = ...); the role is in every token issued after.
ALTER TABLE users
    ADD COLUMN role TEXT NOT NULL DEFAULT 'customer' CHECK (role IN ('customer', 'admin'));
