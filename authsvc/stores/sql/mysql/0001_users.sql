-- Users. Emails are stored lower-cased by the application and compared byte for byte
-- (utf8mb4_bin), so the unique index makes them unique case-insensitively without the
-- accent folding of the _ci collations.
CREATE TABLE users (
    id CHAR(36) CHARACTER SET ascii NOT NULL,
    email VARCHAR(254) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    password_hash VARCHAR(255) CHARACTER SET ascii NOT NULL,
    confirmed BOOLEAN NOT NULL,
    disabled BOOLEAN NOT NULL DEFAULT FALSE,
    created_at DATETIME(3) NOT NULL,
    updated_at DATETIME(3) NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY users_email_unique (email)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
