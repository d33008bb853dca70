//! Values crossing the store facade: parameters bound into statements and columns read out of
//! rows, mapped onto each backend's own types (SQLite's dynamic ones, PostgreSQL's BIGINT, TEXT,
//! BYTEA and BOOLEAN).

use rusqlite::types::{ToSqlOutput, ValueRef};
use tokio_postgres::types::{to_sql_checked, FromSql, IsNull, ToSql, Type};

/// One parameter, borrowed from the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    /// SQL NULL.
    Null,
    /// An integer (BIGINT on PostgreSQL).
    Int(i64),
    /// Text.
    Text(&'a str),
    /// Bytes (BYTEA on PostgreSQL).
    Blob(&'a [u8]),
}

/// What can be bound as a parameter.
pub trait ToValue {
    /// This value as a parameter.
    fn to_value(&self) -> Value<'_>;
}

macro_rules! int_to_value {
    ($($t:ty),*) => {$(
        impl ToValue for $t {
            fn to_value(&self) -> Value<'_> {
                Value::Int(i64::from(*self))
            }
        }
    )*};
}
int_to_value!(i64, i32, u32, u16, u8, bool);

impl ToValue for str {
    fn to_value(&self) -> Value<'_> {
        Value::Text(self)
    }
}
impl ToValue for String {
    fn to_value(&self) -> Value<'_> {
        Value::Text(self)
    }
}
impl ToValue for Box<str> {
    fn to_value(&self) -> Value<'_> {
        Value::Text(self)
    }
}
impl ToValue for [u8] {
    fn to_value(&self) -> Value<'_> {
        Value::Blob(self)
    }
}
impl ToValue for Vec<u8> {
    fn to_value(&self) -> Value<'_> {
        Value::Blob(self)
    }
}
impl<const N: usize> ToValue for [u8; N] {
    fn to_value(&self) -> Value<'_> {
        Value::Blob(self)
    }
}
impl ToValue for Value<'_> {
    fn to_value(&self) -> Value<'_> {
        *self
    }
}
impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Value<'_> {
        (**self).to_value()
    }
}
impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> Value<'_> {
        self.as_ref().map_or(Value::Null, ToValue::to_value)
    }
}

impl rusqlite::ToSql for Value<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match *self {
            Value::Null => ValueRef::Null,
            Value::Int(i) => ValueRef::Integer(i),
            Value::Text(s) => ValueRef::Text(s.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

impl ToSql for Value<'_> {
    fn to_sql(&self, ty: &Type, out: &mut bytes::BytesMut) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match *self {
            Value::Null => Ok(IsNull::Yes),
            // The column decides the width: a parameter compared with an INTEGER column of a
            // hand-made table is INT4, a boolean expression's is BOOL.
            Value::Int(i) => match *ty {
                Type::INT8 => i.to_sql(ty, out),
                Type::INT4 => i32::try_from(i)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(i)?.to_sql(ty, out),
                Type::BOOL => (i != 0).to_sql(ty, out),
                _ => Err(format!("an integer where the statement wants {ty}").into()),
            },
            Value::Text(s) => match *ty {
                Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => s.to_sql(ty, out),
                _ => Err(format!("text where the statement wants {ty}").into()),
            },
            Value::Blob(b) => match *ty {
                Type::BYTEA => b.to_sql(ty, out),
                _ => Err(format!("bytes where the statement wants {ty}").into()),
            },
        }
    }

    fn accepts(_ty: &Type) -> bool {
        // Checked per value in `to_sql`, which knows which variant it holds.
        true
    }

    to_sql_checked!();
}

/// A PostgreSQL column's raw bytes and type, decoded by [`FromValue::from_pg`].
#[derive(Debug)]
pub struct Raw<'a>(pub(crate) Type, pub(crate) &'a [u8]);

impl<'a> FromSql<'a> for Raw<'a> {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(ty.clone(), raw))
    }
    fn accepts(_ty: &Type) -> bool {
        true
    }
}

/// What a column can be read as.
pub trait FromValue: Sized {
    /// From an SQLite value.
    ///
    /// # Errors
    /// The value is not of this type.
    fn from_sqlite(v: ValueRef<'_>) -> Result<Self, String>;
    /// From a PostgreSQL value (`None`: NULL).
    ///
    /// # Errors
    /// The value is not of this type.
    fn from_pg(v: Option<Raw<'_>>) -> Result<Self, String>;
}

type BoxError = Box<dyn std::error::Error + Sync + Send>;

fn pg<T>(v: Option<Raw<'_>>, decode: impl FnOnce(&Type, &[u8]) -> Result<T, BoxError>) -> Result<T, String> {
    let Raw(ty, raw) = v.ok_or("NULL where a value was expected")?;
    decode(&ty, raw).map_err(|e| e.to_string())
}

impl FromValue for i64 {
    fn from_sqlite(v: ValueRef<'_>) -> Result<Self, String> {
        v.as_i64().map_err(|e| e.to_string())
    }
    fn from_pg(v: Option<Raw<'_>>) -> Result<Self, String> {
        pg(v, |ty, raw| match *ty {
            Type::INT8 => i64::from_sql(ty, raw),
            Type::INT4 => i32::from_sql(ty, raw).map(i64::from),
            Type::INT2 => i16::from_sql(ty, raw).map(i64::from),
            Type::BOOL => bool::from_sql(ty, raw).map(i64::from),
            _ => Err(format!("{ty} is not an integer").into()),
        })
    }
}

impl FromValue for u32 {
    fn from_sqlite(v: ValueRef<'_>) -> Result<Self, String> {
        u32::try_from(i64::from_sqlite(v)?).map_err(|e| e.to_string())
    }
    fn from_pg(v: Option<Raw<'_>>) -> Result<Self, String> {
        u32::try_from(i64::from_pg(v)?).map_err(|e| e.to_string())
    }
}

impl FromValue for bool {
    fn from_sqlite(v: ValueRef<'_>) -> Result<Self, String> {
        Ok(i64::from_sqlite(v)? != 0)
    }
    fn from_pg(v: Option<Raw<'_>>) -> Result<Self, String> {
        Ok(i64::from_pg(v)? != 0)
    }
}

impl FromValue for String {
    fn from_sqlite(v: ValueRef<'_>) -> Result<Self, String> {
        v.as_str().map(str::to_owned).map_err(|e| e.to_string())
    }
    fn from_pg(v: Option<Raw<'_>>) -> Result<Self, String> {
        pg(v, |ty, raw| String::from_sql(ty, raw))
    }
}

impl FromValue for Vec<u8> {
    fn from_sqlite(v: ValueRef<'_>) -> Result<Self, String> {
        v.as_blob().map(<[u8]>::to_vec).map_err(|e| e.to_string())
    }
    fn from_pg(v: Option<Raw<'_>>) -> Result<Self, String> {
        pg(v, |ty, raw| match *ty {
            Type::BYTEA => Vec::<u8>::from_sql(ty, raw),
            _ => Err(format!("{ty} is not bytes").into()),
        })
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_sqlite(v: ValueRef<'_>) -> Result<Self, String> {
        match v {
            ValueRef::Null => Ok(None),
            v => T::from_sqlite(v).map(Some),
        }
    }
    fn from_pg(v: Option<Raw<'_>>) -> Result<Self, String> {
        match v {
            None => Ok(None),
            v => T::from_pg(v).map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_widen_and_null_reads_as_none() {
        assert_eq!(i64::from_sqlite(ValueRef::Integer(7)), Ok(7));
        assert_eq!(Option::<i64>::from_sqlite(ValueRef::Null), Ok(None));
        assert_eq!(Option::<i64>::from_pg(None), Ok(None));
        assert!(i64::from_pg(None).is_err(), "NULL is not an integer");
        let four = 4i32.to_be_bytes();
        assert_eq!(i64::from_pg(Some(Raw(Type::INT4, &four))), Ok(4));
        assert!(u32::from_sqlite(ValueRef::Integer(-1)).is_err());
    }

    #[test]
    fn a_parameter_of_the_wrong_kind_is_an_error_not_a_guess() {
        let mut out = bytes::BytesMut::new();
        assert!(ToSql::to_sql(&Value::Text("x"), &Type::INT8, &mut out).is_err());
        assert!(ToSql::to_sql(&Value::Int(i64::MAX), &Type::INT4, &mut out).is_err());
        assert!(ToSql::to_sql(&Value::Int(1), &Type::BOOL, &mut out).is_ok());
    }
}
