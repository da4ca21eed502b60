package eval

import (
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Tiny synthetic data sets with the real sets' columns. The online_retail
// lines of invoice 536365 are quoted from the UCI "Online Retail" data set
// (CC BY 4.0, Daqing Chen, doi:10.24432/C5BW33); everything else is made up.

const hmArticlesCSV = `article_id,product_code,prod_name,product_type_no,product_type_name,product_group_name,graphical_appearance_no,graphical_appearance_name,colour_group_code,colour_group_name,perceived_colour_value_id,perceived_colour_value_name,perceived_colour_master_id,perceived_colour_master_name,department_no,department_name,index_code,index_name,index_group_no,index_group_name,section_no,section_name,garment_group_no,garment_group_name,detail_desc
0100001001,0100001,Tee,1,T-shirt,Garment Upper body,1,Solid,9,Black,4,Dark,5,Black,10,Jersey Basic,A,Ladieswear,1,Ladieswear,16,Womens Basics,1002,Jersey Basic,"Soft tee, in cotton."
0100001002,0100001,Tee (1),1,T-shirt,Garment Upper body,2,Stripe,11,Off White,3,Light,9,White,10,Jersey Basic,A,Ladieswear,1,Ladieswear,16,Womens Basics,1002,Jersey Basic,"Soft tee, in cotton."
0100002001,0100002,Kid shorts,2,Shorts,Garment Lower body,1,Solid,73,Dark Blue,4,Dark,2,Blue,20,Kids Boy,H,Children Sizes 92-140,4,Baby/Children,46,Kids Boy,1010,Shorts,Shorts.
0100003001,0100003,Cap,3,Cap/peaked,Accessories,1,Solid,9,Black,4,Dark,5,Black,30,Men Accessories,F,Menswear,3,Menswear,25,Mens Accessories,1019,Accessories,
`

// Counts: 0100001001 x3, 0100002001 x1, 0100003001 x1, 0100001002 x0.
const hmTransactionsCSV = `t_dat,customer_id,article_id,product_code,price,sales_channel_id,channel_assumed
2020-09-16,aaa,0100001001,0100001,0.05,2,online
2020-09-16,aaa,0100001001,0100001,0.05,2,online
2020-09-17,bbb,0100001001,0100001,0.05,1,store
2020-09-17,bbb,0100002001,0100002,0.02,1,store
2020-09-19,ccc,0100003001,0100003,0.01,2,online
`

// aaa: target 0100001002 (0100001001 was bought in train). bbb: nothing
// new, not scored. ccc: targets 0100002001 and 0999999999 (not in the
// catalog). ddd: target 0100003001.
const hmHoldoutCSV = `customer_id,t_dat,article_id,product_code,price,sales_channel_id,channel_assumed,item_in_train
aaa,2020-09-20,0100001001,0100001,0.05,2,online,1
aaa,2020-09-21,0100001002,0100001,0.05,2,online,0
aaa,2020-09-21,0100001002,0100001,0.05,2,online,0
bbb,2020-09-20,0100001001,0100001,0.05,1,store,1
ccc,2020-09-20,0100002001,0100002,0.02,2,online,1
ccc,2020-09-22,0999999999,0999999,0.02,2,online,0
ddd,2020-09-22,0100003001,0100003,0.01,2,online,1
`

const retailItemsCSV = `stock_code,base_code,n_variants_of_base,description,is_product,n_lines,median_unit_price,first_seen,last_seen
85123A,85123,2,WHITE HANGING HEART T-LIGHT HOLDER,1,10,2.55,2010-12-01,2011-09-30
71053,71053,1,WHITE METAL LANTERN,1,5,3.39,2010-12-01,2011-09-30
84029G,84029,3,KNITTED UNION FLAG HOT WATER BOTTLE,1,4,3.39,2010-12-01,2011-09-30
POST,POST,1,POSTAGE,0,3,18,2010-12-01,2011-09-30
10134,10134,1,,1,1,,2011-04-05,2011-04-05
`

const retailTransactionsCSV = `invoice_no,invoice_ts,customer_id,stock_code,base_code,description,quantity,unit_price,country,is_cancellation,is_product
536365,2010-12-01T08:26:00,17850,85123A,85123,WHITE HANGING HEART T-LIGHT HOLDER,6,2.55,United Kingdom,0,1
536365,2010-12-01T08:26:00,17850,71053,71053,WHITE METAL LANTERN,6,3.39,United Kingdom,0,1
536365,2010-12-01T08:26:00,17850,71053,71053,WHITE METAL LANTERN,6,3.39,United Kingdom,0,1
536365,2010-12-01T08:26:00,17850,POST,POST,POSTAGE,1,18,United Kingdom,0,0
536366,2010-12-01T08:28:00,,84029G,84029,"KNITTED UNION FLAG HOT WATER BOTTLE",6,3.39,United Kingdom,0,1
536366,2010-12-01T08:28:00,,71053,71053,WHITE METAL LANTERN,2,3.39,United Kingdom,0,1
536367,2010-12-01T08:30:00,,85123A,85123,,-10,0,United Kingdom,0,1
C536379,2010-12-01T09:41:00,17850,71053,71053,WHITE METAL LANTERN,-1,3.39,United Kingdom,1,1
C536380,2010-12-01T09:42:00,,71053,71053,WHITE METAL LANTERN,-1,3.39,United Kingdom,1,1
`

const retailHoldoutCSV = `customer_id,invoice_no,invoice_ts,stock_code,base_code,quantity,unit_price,item_in_train
17850,569203,2011-10-02T10:32:00,84029G,84029,48,4.95,1
17850,569203,2011-10-02T10:32:00,85123A,85123,12,2.55,1
`

const taobaoItemsCSV = `item_id,category_id
11,100
12,100
13,200
`

const taobaoEventsCSV = `user_id,item_id,category_id,event_type,behavior_type,timestamp,ts_utc
1,11,100,view,pv,1511539200,2017-11-24T16:00:00Z
1,11,100,cart,cart,1511539260,2017-11-24T16:01:00Z
2,12,100,favorite,fav,1511539260,2017-11-24T16:01:00Z
1,11,100,purchase,buy,1512143999,2017-12-01T15:59:59Z
`

const taobaoHoldoutCSV = `user_id,item_id,category_id,timestamp,ts_utc,item_in_train
2,12,100,1512144105,2017-12-01T16:01:45Z,1
`

// writeSets writes the fixture data sets under a new directory and returns
// it. Files named *.gz are gzipped.
func writeSets(t testing.TB) string {
	t.Helper()
	root := t.TempDir()
	files := map[string]string{
		"hm/articles.csv.gz":                              hmArticlesCSV,
		"hm/train/transactions.csv.gz":                    hmTransactionsCSV,
		"hm/holdout_dev/holdout_purchases.csv":            hmHoldoutCSV,
		"online_retail/train/items.csv":                   retailItemsCSV,
		"online_retail/train/transactions.csv.gz":         retailTransactionsCSV,
		"online_retail/holdout_dev/holdout_purchases.csv": retailHoldoutCSV,
		"taobao/train/items.csv":                          taobaoItemsCSV,
		"taobao/train/events.csv.gz":                      taobaoEventsCSV,
		"taobao/holdout_dev/holdout_purchases.csv":        taobaoHoldoutCSV,
	}
	for name, body := range files {
		writeFile(t, filepath.Join(root, name), body)
	}
	return root
}

// writeFile writes body to path, gzipped if path ends in ".gz".
func writeFile(t testing.TB, path, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if strings.HasSuffix(path, ".gz") {
		zw := gzip.NewWriter(f)
		if _, err := zw.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
	} else if _, err := f.WriteString(body); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}
