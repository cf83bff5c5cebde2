-- Revenue counts only lines whose unit price is known, so a revenue of 0 alone cannot tell "sold for nothing"
-- from "no price known". pricedordered is the number of units the revenue covers: the item report shows revenue
-- only where it is above zero, and a client can see how much of totalordered it covers. Filled from the lines for
-- a read model projected before this column existed.
ALTER TABLE item_sales ADD COLUMN pricedordered BIGINT NOT NULL DEFAULT 0;
UPDATE item_sales SET pricedordered = COALESCE((
    SELECT SUM(i.quantity) FROM orderitems i JOIN orders o ON o.orderid = i.orderid
    WHERE i.itemid = item_sales.itemid AND o.orderstatus = 'created' AND i.unitprice IS NOT NULL
), 0);
