-- The outbox had two indexes over the same rows: the primary key (id), used
-- only by the relay's DELETE / attempt UPDATE of the ids it just published,
-- and outbox_producer (producer, id), used by its sweep. Every outbox row
-- (ten per case) paid for both entries. One index (producer, id) serves
-- both: the relay always knows the producer of the ids it deletes.
ALTER TABLE outbox DROP CONSTRAINT outbox_pkey, ADD CONSTRAINT outbox_pkey PRIMARY KEY (producer, id);
DROP INDEX outbox_producer;
